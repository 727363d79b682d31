"""Rounds: the same variants measured again and again, each time in a fresh process, for one or
two models (baseline and candidate) interleaved A/B, B/A, A/B, ... so that whatever else the
machine is doing falls on both sides alike. What `hwfit check` compares."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hwfit.core import Variant
from hwfit.models import Model
from hwfit.profile.isolation import run_isolated
from hwfit.profile.point import PointPlan, measure_point
from hwfit.profile.quick import REFERENCE_SAMPLES, REFERENCE_SEED, _reference_job
from hwfit.profile.stats import StopRule, WarmupRule
from hwfit.store import Measurement


@dataclass(frozen=True)
class RoundSettings:
    """How many rounds, and how long each round's process warms up and measures."""

    rounds: int = 6
    round_s: float = 1.0
    warmup_s: float = 0.5
    timeout_s: float = 300.0

    def stop_rule(self) -> StopRule:
        # A fixed window: stop once `round_s` has passed (and 10 runs); a run longer than the window
        # still gets its 10 runs, up to a budget of 5 windows.
        return StopRule(target_rel=1.0, min_runs=10, min_seconds=self.round_s, budget_s=max(5 * self.round_s, 5.0))


@dataclass
class Arm:
    """One side of a comparison: a name ('baseline', 'candidate') and the model it runs."""

    name: str
    model: Model
    measurements: dict[str, list[Measurement]] = field(default_factory=dict)  # variant key -> one per round


@dataclass
class RoundsOutcome:
    """Per arm, per variant key: one Measurement holding every round (`rounds`), or a failure."""

    points: dict[str, dict[str, Measurement]]
    reference_source: str  # the model whose fp32 outputs every arm's accuracy is judged against
    processes: int
    wall_s: float


def measure_rounds(
    arms: Sequence[Arm],
    variants: Sequence[Variant],
    settings: RoundSettings,
    reference_model: Model,
    on_progress: Callable[[str], None] | None = None,
) -> RoundsOutcome:
    """Measure every variant of every arm `settings.rounds` times, each in a fresh process, arms
    interleaved with alternating order (A B, B A, ...); accuracy of every arm against the fp32
    outputs of `reference_model`. A variant that fails in one round is not measured again."""
    import time

    started = time.perf_counter()
    progress = on_progress or (lambda text: None)
    reference, reference_inputs = _reference(reference_model, settings)
    failed: dict[tuple[str, str], Measurement] = {}
    processes = 0
    for round_index in range(settings.rounds):
        order = list(arms) if round_index % 2 == 0 else list(reversed(arms))
        for variant in variants:
            for arm in order:
                if any(key == variant.key for _, key in failed):
                    continue  # one side failed on it: there is nothing left to compare
                progress(f"round {round_index + 1}/{settings.rounds}: {arm.name} {variant.key}")
                plan = PointPlan(
                    arm.model.source,
                    arm.model.inputs,
                    variant,
                    stop=settings.stop_rule(),
                    warmup=WarmupRule(budget_s=settings.warmup_s),
                    reference=reference,
                    reference_inputs=reference_inputs,
                )
                outcome = run_isolated(measure_point, (plan,), settings.timeout_s + settings.warmup_s)
                processes += 1
                if not outcome.ok or outcome.value.status == "failed":
                    reason = outcome.reason if not outcome.ok else outcome.value.reason
                    failure = Measurement(
                        variant.key, variant.to_dict(), "failed", f"round {round_index + 1}: {reason}"
                    )
                    failed[(arm.name, variant.key)] = failure
                    continue
                outcome.value.wall_s = outcome.wall_s
                arm.measurements.setdefault(variant.key, []).append(outcome.value)
    points = {arm.name: _combine(arm, variants, failed) for arm in arms}
    return RoundsOutcome(points, reference_model.source, processes, time.perf_counter() - started)


def combine_rounds(measurements: list[Measurement]) -> Measurement:
    """One point from its rounds: the round with the median p50 stands for the point, and
    `rounds` holds every round's figures in the order they ran."""
    ordered = sorted(measurements, key=lambda m: m.latency.p50_ms if m.latency else 0.0)
    chosen = ordered[(len(ordered) - 1) // 2]
    combined = Measurement.from_dict(chosen.to_dict())
    combined.rounds = [sample for m in measurements for sample in (m.rounds or [m.round_sample()])]
    combined.wall_s = sum(m.wall_s or 0.0 for m in measurements)
    p50s = [m.latency.p50_ms for m in measurements if m.latency]
    combined.details["round_p50_ms"] = p50s
    if p50s:
        combined.details["round_p50_spread"] = (max(p50s) - min(p50s)) / statistics.median(p50s)
    return combined


def _combine(arm: Arm, variants: Sequence[Variant], failed: dict) -> dict[str, Measurement]:
    points = {}
    for variant in variants:
        if (arm.name, variant.key) in failed:
            points[variant.key] = failed[(arm.name, variant.key)]
        elif arm.measurements.get(variant.key):
            points[variant.key] = combine_rounds(arm.measurements[variant.key])
        else:  # the other arm failed first, so this one was not measured to the end
            points[variant.key] = Measurement(
                variant.key, variant.to_dict(), "skipped", "not measured: the other side failed on this variant"
            )
    return points


def _reference(model: Model, settings: RoundSettings):
    from hwfit.core import HwfitError

    inputs, _ = model.sample_inputs(REFERENCE_SAMPLES, seed=REFERENCE_SEED)
    outcome = run_isolated(_reference_job, (model.source, model.inputs, inputs), settings.timeout_s)
    if not outcome.ok:
        raise HwfitError(f"the fp32 reference run of {model.name} failed, so nothing can be compared: {outcome.reason}")
    return outcome.value, inputs
