"""The statistics of the gate: an exact one-sided Mann-Whitney U test (ties included) on per-round
figures, and a bootstrap confidence interval of the change of the median between two samples.

Why these: the samples are a handful of rounds (one figure per fresh process), their distribution
on a shared machine is skewed and heavy-tailed (a round that lost its core to another job is 20%
slow), so no normal theory; Mann-Whitney compares ranks, so one bad round moves the test by one
rank, not by its size, and the exact null distribution is right at 5 to 12 rounds where a normal
approximation is not. The test says whether to trust a change; the median's change (with its
bootstrap interval) says how big it is, which the thresholds judge.
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
