"""The gate: measure the candidate in rounds (interleaved with the baseline's model where both can
run here), compare each variant × metric with the baseline's rounds, and decide — pass, warn,
fail, or incomparable — with the environment diff that may explain a change."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hwfit.check.baseline import Baseline
from hwfit.check.envdiff import EnvChange, diff_environments, unsound_changes
from hwfit.check.errors import CheckError
from hwfit.check.stats import (
    mann_whitney_p,
    median_change_ci,
    paired_change_ci,
    paired_changes,
    signed_rank_p,
    smallest_p,
    smallest_signed_rank_p,
)
from hwfit.check.thresholds import GateMetric, Thresholds
from hwfit.core import GATE_VERDICTS, Variant
from hwfit.profile import Arm, RoundSettings, capture_environment, measure_rounds
from hwfit.store import Environment, Measurement, ResultsStore

# How bad each verdict is, for a variant's verdict (its worst metric) and the exit code.
SEVERITY = {"improved": 0, "pass": 1, "warn": 2, "incomparable": 3, "fail": 4}
assert set(SEVERITY) == set(GATE_VERDICTS)
# Metrics whose value depends on the hardware: not failed across an unsound environment change.
HARDWARE_BOUND = ("p50_ms", "p99_ms", "samples_per_s", "energy_j_per_sample")
MODES = {
    "interleaved": "both models measured here, in alternating rounds of fresh processes",
    "stored": "the candidate measured here against the baseline's stored rounds",
    "record": "the candidate measured to record a baseline; nothing compared",
}


@dataclass(frozen=True)
class CheckSettings:
    rounds: RoundSettings = RoundSettings(rounds=10)
    thresholds: Thresholds = Thresholds()
    allow_env_change: bool = False  # fail on timings across other hardware
    fail_on_stored: bool = False  # fail on timings against stored rounds (not measured now, side by side)


@dataclass
class MetricResult:
    """One variant × metric: both sides' medians, the change with its 95% bootstrap interval, the
    one-sided Mann-Whitney p-value that the candidate is worse, and the verdict with its reason."""

    metric: GateMetric
    verdict: str
    reason: str
    baseline_median: float | None = None
    candidate_median: float | None = None
    change: float | None = None  # relative (share) or absolute, signed: candidate - baseline
    ci_low: float | None = None
    ci_high: float | None = None
    p_worse: float | None = None
    baseline_rounds: list[float] = field(default_factory=list)
    candidate_rounds: list[float] = field(default_factory=list)

    @property
    def worse_by(self) -> float | None:
        """The change in the worse direction (positive: a regression)."""
        if self.change is None:
            return None
        return self.change if self.metric.direction == "min" else -self.change

    def to_dict(self) -> dict:
        return {
            "metric": self.metric.name,
            "label": self.metric.label,
            "unit": self.metric.unit,
            "relative": self.metric.relative,
            "direction": self.metric.direction,
            "fail_at": self.metric.fail,
            "warn_at": self.metric.warn,
            "verdict": self.verdict,
            "reason": self.reason,
            "baseline_median": self.baseline_median,
            "candidate_median": self.candidate_median,
            "change": self.change,
            "change_ci95": [self.ci_low, self.ci_high] if self.ci_low is not None else None,
            "p_worse": self.p_worse,
            "baseline_rounds": self.baseline_rounds,
            "candidate_rounds": self.candidate_rounds,
        }


@dataclass
class VariantResult:
    key: str
    metrics: list[MetricResult]
    reason: str | None = None  # why the variant as a whole could not be compared

    @property
    def verdict(self) -> str:
        if self.reason:
            return "incomparable"
        return max((m.verdict for m in self.metrics), key=SEVERITY.__getitem__, default="pass")

    def to_dict(self) -> dict:
        return {
            "variant": self.key,
            "verdict": self.verdict,
            "reason": self.reason,
            "metrics": [m.to_dict() for m in self.metrics],
        }


@dataclass
class CheckReport:
    """Everything a check found: what it measured how, each variant's verdicts, the environment diff."""

    model: str
    model_hash: str
    baseline: str | None
    baseline_model_hash: str | None
    mode: str
    settings: CheckSettings
    variants: list[VariantResult] = field(default_factory=list)
    environment_changes: list[EnvChange] = field(default_factory=list)
    baseline_environment: dict | None = None
    candidate_environment: dict | None = None
    new_variants: list[str] = field(default_factory=list)
    candidate_run_id: int | None = None
    processes: int = 0
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def unsound(self) -> list[EnvChange]:
        """Hardware changes that make this comparison unsound (only when comparing stored rounds)."""
        return unsound_changes(self.environment_changes) if self.mode == "stored" else []

    @property
    def verdict(self) -> str:
        if not self.variants:
            return "pass" if self.mode == "record" else "incomparable"
        return max((v.verdict for v in self.variants), key=SEVERITY.__getitem__)

    @property
    def exit_code(self) -> int:
        """0 pass (warnings included), 1 a regression, 2 could not compare (a regression found
        elsewhere wins: it is certain and actionable)."""
        return {"fail": 1, "incomparable": 2}.get(self.verdict, 0)

    def to_dict(self) -> dict:
        return {
            "schema": "hwfit.check/1",
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "model": self.model,
            "model_hash": self.model_hash,
            "baseline": self.baseline,
            "baseline_model_hash": self.baseline_model_hash,
            "mode": self.mode,
            "mode_how": MODES[self.mode],
            "rounds": self.settings.rounds.rounds,
            "round_s": self.settings.rounds.round_s,
            "alpha": self.settings.thresholds.alpha,
            "thresholds": self.settings.thresholds.origin,
            "test": (
                "one-sided exact Wilcoxon signed-rank on the paired per-round changes"
                if self.mode == "interleaved"
                else "one-sided exact Mann-Whitney U between the per-round figures"
            )
            + " (p < alpha) and the change beyond the metric's threshold; 95% bootstrap interval of the change",
            "allow_env_change": self.settings.allow_env_change,
            "fail_on_stored": self.settings.fail_on_stored,
            "environment_changes": [c.to_dict() for c in self.environment_changes],
            "unsound_environment": [c.field for c in self.unsound],
            "baseline_environment": self.baseline_environment,
            "candidate_environment": self.candidate_environment,
            "variants": [v.to_dict() for v in self.variants],
            "new_variants": self.new_variants,
            "candidate_run_id": self.candidate_run_id,
            "processes": self.processes,
            "wall_s": self.wall_s,
            "notes": self.notes,
        }


def compare_samples(
    metric: GateMetric,
    baseline: Sequence[float],
    candidate: Sequence[float],
    alpha: float,
    interval: bool = True,
    paired: bool = False,
):
    """The verdict on one metric from both sides' per-round figures (see hwfit.check.stats for why
    these tests). `paired`: round i of each side ran next to each other (interleaved), so the test
    is Wilcoxon's signed-rank on the per-pair changes; else Mann-Whitney between the two samples.
    fail = p < alpha that the candidate is worse AND the change at least `fail`; warn = the same
    at `warn`; improved = the mirror image at `warn`; else pass (a large change without
    significance passes, with that said in its reason). Changes smaller than the metric's floor
    are never flagged. `interval=False` leaves out the bootstrap interval (shown, not used)."""
    base, cand = [float(v) for v in baseline], [float(v) for v in candidate]
    result = MetricResult(metric, "pass", "", baseline_rounds=base, candidate_rounds=cand)
    if not base or not cand:
        side = "baseline" if not base else "candidate"
        result.verdict, result.reason = "incomparable", f"no {metric.label} figure on the {side} side"
        return result
    paired = paired and len(base) == len(cand)
    result.baseline_median = _median(base)
    result.candidate_median = _median(cand)
    estimate = paired_change_ci if paired else median_change_ci
    result.change, result.ci_low, result.ci_high = estimate(
        base, cand, metric.relative, resamples=2000 if interval else 1
    )
    if not interval:
        result.ci_low = result.ci_high = None
    worse, better = ("greater", "less") if metric.direction == "min" else ("less", "greater")
    if paired:
        changes = paired_changes(base, cand, metric.relative)
        result.p_worse, p_better = signed_rank_p(changes, worse), signed_rank_p(changes, better)
        best_p, test = smallest_signed_rank_p(len(base)), f"{len(base)} paired rounds"
    else:
        result.p_worse, p_better = mann_whitney_p(base, cand, worse), mann_whitney_p(base, cand, better)
        best_p, test = smallest_p(len(base), len(cand)), f"{len(base)} baseline and {len(cand)} candidate rounds"
    if best_p >= alpha:
        result.verdict = "incomparable"
        result.reason = (
            f"{test} cannot reach p < {alpha:g} (the best possible is {best_p:.3f}); "
            "record the baseline with more rounds"
        )
        return result
    worse_by = result.worse_by
    below_floor = abs(result.candidate_median - result.baseline_median) < metric.floor
    shown = f"{metric.describe(result.change)} (p={result.p_worse:.3g})"
    if below_floor:
        result.reason = f"{shown}: under the floor of {metric.floor:g} {metric.unit}"
    elif result.p_worse < alpha and worse_by >= metric.fail:
        result.verdict, result.reason = "fail", f"{shown}: worse by at least {metric.describe(metric.fail)[1:]}"
    elif result.p_worse < alpha and worse_by >= metric.warn:
        result.verdict, result.reason = "warn", f"{shown}: worse by at least {metric.describe(metric.warn)[1:]}"
    elif worse_by >= metric.fail:  # noise until the rounds say otherwise: a warning here cries wolf
        result.reason = f"{shown}: worse by {metric.describe(metric.fail)[1:]} or more, but not significant"
    elif p_better < alpha and -worse_by >= metric.warn:
        result.verdict, result.reason = "improved", f"{metric.describe(result.change)} (p={p_better:.3g})"
    else:
        result.reason = shown
    return result


def run_check(
    candidate,
    baseline: Baseline | None,
    settings: CheckSettings,
    store: ResultsStore,
    wanted: Sequence[Variant] | None = None,
    baseline_model=None,
    progress: Callable[[str], None] | None = None,
    args: dict | None = None,
) -> CheckReport:
    """Measure `candidate` (a hwfit Model) and compare it with `baseline` (None: only record).

    `baseline_model` is the baseline's model where it can run here (usually the model the baseline
    was recorded with; the report says so when it is not): then both run interleaved and the
    baseline's stored rounds are not used, only its variants.
    The candidate's rounds are recorded in `store` as a run (its id is in the report)."""
    started = time.perf_counter()
    variants, new_variants = _variants(baseline, wanted)
    mode = _mode(candidate, baseline, baseline_model)
    report = CheckReport(
        candidate.name,
        candidate.content_hash,
        baseline.origin if baseline else None,
        baseline.run.model_hash if baseline else None,
        mode,
        settings,
        new_variants=new_variants,
    )
    arms = [Arm("candidate", candidate)]
    if mode == "interleaved":
        arms.insert(0, Arm("baseline", baseline_model))
    reference = baseline_model if mode == "interleaved" else candidate
    outcome = measure_rounds(arms, variants, settings.rounds, reference, progress)
    report.processes = outcome.processes
    environment = capture_environment()
    report.candidate_run_id = _record(store, candidate, environment, outcome.points["candidate"], settings, args)
    report.candidate_environment = environment.to_dict()
    if baseline is not None:
        report.baseline_environment = baseline.run.environment.to_dict()
        report.environment_changes = diff_environments(
            baseline.run.environment, environment, baseline.run.model_hash, candidate.content_hash
        )
        if mode == "interleaved":
            report.notes.append(
                "both sides were measured here in the same environment: only the model differs; the environment "
                f"diff is against the one {baseline.origin} was recorded in"
            )
            if baseline_model.content_hash != baseline.run.model_hash:
                report.baseline_model_hash = baseline_model.content_hash
                report.notes.append(
                    f"the baseline side ran {baseline_model.source} (content hash {baseline_model.content_hash[:12]}), "
                    f"not the model {baseline.origin} was recorded with ({baseline.run.model_hash[:12]}): its "
                    "variants were kept, its stored rounds were not used"
                )
        for variant in variants:
            base_point = (
                outcome.points["baseline"][variant.key] if mode == "interleaved" else baseline.points[variant.key]
            )
            report.variants.append(
                compare_points(
                    variant.key,
                    base_point,
                    outcome.points["candidate"][variant.key],
                    settings,
                    paired=mode == "interleaved",
                )
            )
        if mode == "stored" and baseline.run.model_hash != candidate.content_hash:
            report.notes.append(
                "the baseline's model could not run here, so the candidate's accuracy is judged against its own "
                "fp32 outputs (a lossy change to the model itself goes unseen): pass --baseline-model"
            )
        hold_unsound(report)
    else:
        for variant in variants:  # recording: a variant passes when it was measured
            point = outcome.points["candidate"][variant.key]
            failed = point.status in ("failed", "skipped")
            report.variants.append(VariantResult(variant.key, [], f"not measured: {point.reason}" if failed else None))
    if new_variants:
        report.notes.append(f"not in the baseline, so not compared: {', '.join(new_variants)}")
    report.wall_s = time.perf_counter() - started
    store.set_run_extra(report.candidate_run_id, "check", report.to_dict())
    return report


def _variants(baseline: Baseline | None, wanted: Sequence[Variant] | None) -> tuple[list[Variant], list[str]]:
    if baseline is None:
        if not wanted:
            raise CheckError("nothing to measure: the sweep names no variant that can run here")
        return list(wanted), []
    available = {key: point.as_variant() for key, point in baseline.usable.items()}
    if not wanted:
        return list(available.values()), []
    chosen = [available[v.key] for v in wanted if v.key in available]
    new = [v.key for v in wanted if v.key not in available]
    if not chosen:
        raise CheckError(
            f"none of the variants asked for ({', '.join(new)}) is in baseline {baseline.origin}, "
            f"which has {', '.join(available)}; record a new baseline with --update-baseline"
        )
    return chosen, new


def _mode(candidate, baseline: Baseline | None, baseline_model) -> str:
    if baseline is None:
        return "record"
    if baseline_model is None or baseline_model.content_hash == candidate.content_hash:
        return "stored"
    return "interleaved"


def compare_points(
    key: str,
    base: Measurement,
    cand: Measurement,
    settings: CheckSettings,
    interval: bool = True,
    paired: bool = False,
) -> VariantResult:
    """One variant: every metric the thresholds keep, from both points' rounds (a point stored
    without rounds counts as one round); `paired` when round i of each ran side by side."""
    for side, point in (("baseline", base), ("candidate", cand)):
        if point.status in ("failed", "skipped"):
            return VariantResult(key, [], f"the {side} could not be measured: {point.reason}")
    base_rounds = base.rounds or [base.round_sample()]
    cand_rounds = cand.rounds
    results = []
    for metric in settings.thresholds.for_variant(key):
        base_values = [r[metric.name] for r in base_rounds if metric.name in r]
        cand_values = [r[metric.name] for r in cand_rounds if metric.name in r]
        if not metric.required and (not base_values or not cand_values):
            continue  # e.g. energy measured on one side only: nothing to compare, nothing wrong
        paired_here = paired and len(base_values) == len(base_rounds) == len(cand_values) == len(cand_rounds)
        alpha = settings.thresholds.alpha
        results.append(compare_samples(metric, base_values, cand_values, alpha, interval, paired_here))
    return VariantResult(key, results)


def hold_unsound(report: CheckReport) -> None:
    """Timing failures that say nothing certain about the code become warnings, with the reason:
    across another CPU model, GPU or core count (unless --allow-env-change), and against rounds
    stored at another time (unless --fail-on-stored): here the machine's drift between two times
    exceeds the thresholds — a third of A/A checks against stored rounds failed, none interleaved
    (bench/results/check_power.md)."""
    reasons, notes = [], []
    unsound = report.unsound
    if unsound:
        what = ", ".join(f"{c.label} {c.baseline} -> {c.candidate}" for c in unsound)
        if report.settings.allow_env_change:
            report.notes.append(f"timings judged across other hardware ({what}) because of --allow-env-change")
        else:
            reasons.append(f"the baseline ran on other hardware ({what})")
            notes.append(f"re-record the baseline on this hardware or pass --allow-env-change ({what})")
    if report.mode == "stored" and not report.settings.fail_on_stored:
        reasons.append("compared with rounds stored at another time, when the machine may have been faster")
        notes.append("pass --baseline-model to measure both sides now, interleaved, or --fail-on-stored")
    if not reasons:
        return
    held = 0
    for variant in report.variants:
        for result in variant.metrics:
            if result.metric.name in HARDWARE_BOUND and result.verdict == "fail":
                result.verdict = "warn"
                result.reason += "; not failed: " + "; ".join(reasons)
                held += 1
    report.notes.append(
        f"timings are not trusted to fail this check ({'; '.join(reasons)}): {held} timing failure(s) held as "
        f"warnings; {'; '.join(notes)}"
    )


def _record(store: ResultsStore, candidate, environment: Environment, points: dict, settings, args) -> int:
    key_source = json.dumps({"model": candidate.content_hash, "rounds": settings.rounds.__dict__}, sort_keys=True)
    sweep_key = "check:" + hashlib.sha256(key_source.encode()).hexdigest()[:16]
    run = store.start_run(candidate.name, candidate.source, candidate.content_hash, sweep_key, args or {}, environment)
    for point in points.values():
        store.record(run.id, point)
    failed = [key for key, point in points.items() if point.status == "failed"]
    store.finish_run(run.id, "complete", f"hwfit check: {len(points)} variant(s), {len(failed)} failed")
    return run.id


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2.0
