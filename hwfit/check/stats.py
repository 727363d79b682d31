"""The statistics of the gate: exact one-sided rank tests on per-round figures — Wilcoxon's
signed-rank test on the paired changes of interleaved rounds, Mann-Whitney's U test between a
candidate's rounds and stored ones — and a bootstrap confidence interval of the change.

Why these: the samples are a handful of rounds (one figure per fresh process), their distribution
on a shared machine is skewed and heavy-tailed (a round that lost its core to another job is 20%
slow), so no normal theory; rank tests move by one rank for one bad round, not by its size, and
their exact null distributions are right at 5 to 12 rounds where a normal approximation is not.
Paired when the sides were interleaved: here the machine drifts (per-round p50 of the same model
has a lag-1 autocorrelation of 0.69 and a spread of 2.4%), and the ratio of two rounds run side
by side cancels the drift (its spread is 1.3%), which took detection of a 5% slowdown at 10 rounds
from 90% (Mann-Whitney) to 100% with no false alarm (bench/results/check_power.md). The test says
whether to trust a change; the median's change (with its bootstrap interval) says how big it is,
which the thresholds judge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

EXACT_LIMIT = 80  # exact null distribution up to this many values in all; normal approximation above
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20240917


def mann_whitney_p(baseline: Sequence[float], candidate: Sequence[float], alternative: str) -> float:
    """One-sided p-value of the Mann-Whitney U test that the candidate's values tend to be
    `"greater"` (or `"less"`) than the baseline's. Exact (ties by mid-ranks) up to EXACT_LIMIT values."""
    if alternative not in ("greater", "less"):
        raise ValueError(f"alternative must be 'greater' or 'less', got {alternative!r}")
    base = np.asarray(baseline, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if len(base) == 0 or len(cand) == 0:
        return 1.0
    values = np.concatenate([base, cand])
    scores = _doubled_midranks(values)  # integers: 2 x mid-rank
    observed = int(scores[len(base) :].sum())
    if len(values) <= EXACT_LIMIT:
        return _exact_p(scores, len(cand), observed, alternative)
    return _normal_p(values, scores, len(base), len(cand), observed, alternative)


def signed_rank_p(differences: Sequence[float], alternative: str) -> float:
    """One-sided p-value of Wilcoxon's signed-rank test that the paired differences tend to be
    `"greater"` (or `"less"`) than zero. Zeros are dropped (Wilcoxon's own rule); ties share
    mid-ranks; exact up to EXACT_LIMIT pairs, normal approximation above."""
    if alternative not in ("greater", "less"):
        raise ValueError(f"alternative must be 'greater' or 'less', got {alternative!r}")
    values = np.asarray(differences, dtype=np.float64)
    values = values[values != 0]
    if len(values) == 0:
        return 1.0
    scores = _doubled_midranks(np.abs(values))
    positive = int(scores[values > 0].sum())
    total = int(scores.sum())
    if len(values) > EXACT_LIMIT:
        return _signed_rank_normal(np.abs(values), len(values), positive / 2.0, alternative)
    counts = np.zeros(total + 1, dtype=np.float64)  # counts[s]: sign patterns whose positive scores sum to s
    counts[0] = 1.0
    for score in scores:
        counts[score:] += counts[: total + 1 - score].copy()
    distribution = counts / counts.sum()
    if alternative == "greater":
        return float(min(distribution[positive:].sum(), 1.0))
    return float(min(distribution[: positive + 1].sum(), 1.0))


def paired_changes(baseline: Sequence[float], candidate: Sequence[float], relative: bool) -> np.ndarray:
    """Per pair of rounds: log(candidate / baseline) for a relative metric with positive values,
    else candidate - baseline."""
    base = np.asarray(baseline, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if len(base) != len(cand):
        raise ValueError(f"paired rounds need equal counts, got {len(base)} and {len(cand)}")
    if relative and (base > 0).all() and (cand > 0).all():
        return np.log(cand / base)
    return cand - base


def paired_change_ci(
    baseline: Sequence[float],
    candidate: Sequence[float],
    relative: bool,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float, float]:
    """(change, low, high) from paired rounds: the median per-pair change (relative: exp of the
    median log ratio, minus 1) and its percentile bootstrap interval over pairs."""
    changes = paired_changes(baseline, candidate, relative)
    logs = relative and bool((np.asarray(baseline) > 0).all() and (np.asarray(candidate) > 0).all())
    rng = np.random.default_rng(seed)
    medians = np.median(changes[rng.integers(0, len(changes), (resamples, len(changes)))], axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(medians, [tail, 100.0 - tail])
    centre = float(np.median(changes))
    if logs:
        return math.expm1(centre), math.expm1(float(low)), math.expm1(float(high))
    if relative:  # a zero on either side: the change of the medians, as unpaired
        return median_change_ci(baseline, candidate, relative, confidence, resamples, seed)
    return centre, float(low), float(high)


def smallest_signed_rank_p(pairs: int) -> float:
    """The smallest one-sided p-value of the signed-rank test with this many pairs: 1 / 2^n."""
    return 1.0 / 2.0**pairs if pairs else 1.0


def smallest_p(n_baseline: int, n_candidate: int) -> float:
    """The smallest one-sided p-value Mann-Whitney can give with these sample sizes (complete
    separation, no ties): 1 / C(n + m, m). A gate needs it below its alpha to ever flag anything."""
    if n_baseline == 0 or n_candidate == 0:
        return 1.0
    return 1.0 / math.comb(n_baseline + n_candidate, n_candidate)


def median_change_ci(
    baseline: Sequence[float],
    candidate: Sequence[float],
    relative: bool,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float, float]:
    """(change, low, high): the change of the median from baseline to candidate — relative
    (median_c / median_b - 1) or absolute (median_c - median_b) — and its percentile bootstrap
    interval, each side resampled with replacement on its own (seeded: the same data, the same interval)."""
    base = np.asarray(baseline, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    change = _change(float(np.median(base)), float(np.median(cand)), relative)
    rng = np.random.default_rng(seed)
    base_medians = np.median(base[rng.integers(0, len(base), (resamples, len(base)))], axis=1)
    cand_medians = np.median(cand[rng.integers(0, len(cand), (resamples, len(cand)))], axis=1)
    if relative:
        with np.errstate(divide="ignore", invalid="ignore"):
            changes = np.where(base_medians != 0, cand_medians / base_medians - 1.0, 0.0)
    else:
        changes = cand_medians - base_medians
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(changes, [tail, 100.0 - tail])
    return change, float(low), float(high)


def _change(base_median: float, cand_median: float, relative: bool) -> float:
    if not relative:
        return cand_median - base_median
    if base_median == 0:
        return 0.0 if cand_median == 0 else math.copysign(math.inf, cand_median)
    return cand_median / base_median - 1.0


def _doubled_midranks(values: np.ndarray) -> np.ndarray:
    """2 x the mid-rank of each value (ranks from 1; tied values share the mean of their ranks)."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    scores = np.empty(len(values), dtype=np.int64)
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        scores[order[start : end + 1]] = (start + 1) + (end + 1)  # 2 x mean of ranks start+1..end+1
        start = end + 1
    return scores


def _exact_p(scores: np.ndarray, n_candidate: int, observed: int, alternative: str) -> float:
    """P(sum of n_candidate scores drawn without replacement >= observed) (or <=), by counting subsets."""
    total = int(scores.sum())
    # counts[k, s]: how many k-subsets of the scores seen so far sum to s
    counts = np.zeros((n_candidate + 1, total + 1), dtype=np.float64)
    counts[0, 0] = 1.0
    for score in scores:
        counts[1:, score:] += counts[:-1, : total + 1 - score].copy()
    distribution = counts[n_candidate]
    distribution = distribution / distribution.sum()
    if alternative == "greater":
        return float(min(distribution[observed:].sum(), 1.0))
    return float(min(distribution[: observed + 1].sum(), 1.0))


def _signed_rank_normal(magnitudes, n: int, positive_sum: float, alternative: str) -> float:
    mean = n * (n + 1) / 4.0
    _, tie_counts = np.unique(magnitudes, return_counts=True)
    variance = n * (n + 1) * (2 * n + 1) / 24.0 - float(((tie_counts**3) - tie_counts).sum()) / 48.0
    if variance <= 0:
        return 1.0
    sign = 1.0 if alternative == "greater" else -1.0
    z = (sign * (positive_sum - mean) - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _normal_p(values, scores, n_base: int, n_cand: int, observed: int, alternative: str) -> float:
    """Normal approximation with the tie correction and a continuity correction, for large samples."""
    n = n_base + n_cand
    rank_sum = observed / 2.0
    mean = n_cand * (n + 1) / 2.0
    _, tie_counts = np.unique(values, return_counts=True)
    tie_term = float(((tie_counts**3) - tie_counts).sum()) / (n * (n - 1))
    variance = n_base * n_cand / 12.0 * ((n + 1) - tie_term)
    if variance <= 0:
        return 1.0
    sign = 1.0 if alternative == "greater" else -1.0
    z = (sign * (rank_sum - mean) - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2.0))
