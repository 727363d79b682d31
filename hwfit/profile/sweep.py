"""The sweep: the steps of profiling in order — plan the variants, open or resume the run, measure
the machine's ceilings, compute the fp32 reference, then measure each point in its own process,
growing the batch until throughput stops rising — recording every point, failures included."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

from hwfit.backends import backend_names, candidate_variants, get_backend
from hwfit.core import HwfitError, Variant, is_usable
from hwfit.models import Model
from hwfit.profile.ceilings import cached_ceilings
from hwfit.profile.isolation import JobOutcome, run_isolated
from hwfit.profile.point import PointPlan, measure_point
from hwfit.profile.quick import REFERENCE_SAMPLES, REFERENCE_SEED, _reference_job
from hwfit.profile.stats import StopRule, WarmupRule
from hwfit.profile.sweepspec import SweepSpec, knob_combinations
from hwfit.store import Measurement, ResultsStore, open_store

# Precision -> the matmul dtype whose ceiling and peak bound it (MFU). tf32 has its own peak: an
# fp32 variant on a GPU runs IEEE fp32 (the backends turn TF32 off), so the fp32 peak is its bound.
PRECISION_DTYPE = {
    "fp32": "fp32",
    "tf32": "tf32",
    "fp16": "fp16",
    "bf16": "bf16",
    "int8-dynamic": "int8",
    "int8-static": "int8",
}


class SweepObserver(Protocol):
    def planned(self, total_points: int) -> None: ...
    def stage(self, text: str) -> None: ...
    def point_started(self, variant: Variant) -> None: ...
    def point_progress(self, variant: Variant, message: dict) -> None: ...
    def point_finished(self, variant: Variant, measurement: Measurement, reused: bool) -> None: ...
    def family_finished(self, family: FamilyOutcome, skipped_points: int) -> None: ...


CEILINGS_STAGE = "this machine's ceilings (measured once a week, kept in the hwfit cache)"
INTERRUPT_WAIT_S = 30.0  # after Ctrl-C: how long the families in flight get to stop


class PointExecutor(Protocol):
    """Where a point's process runs: here (`LocalExecutor`), or on a cluster node (hwfit.cluster).

    `concurrency` is how many variant families may be measured at once (each family grows its
    batch in order); two points never share a device while measured, which the executor ensures.
    One that runs families at once has `interrupt()`: the points in flight then raise
    KeyboardInterrupt in their threads instead of returning (an interrupted point is not a result).
    """

    concurrency: int

    def measure(self, plan: PointPlan, timeout_s: float, on_progress: Callable[[dict], None]) -> JobOutcome: ...

    def ceilings(self, devices: set[str], timeout_s: float, fresh: bool = False) -> dict: ...


class LocalExecutor:
    """Every point in a fresh process on this machine, one at a time."""

    concurrency = 1

    def measure(self, plan: PointPlan, timeout_s: float, on_progress: Callable[[dict], None]) -> JobOutcome:
        return run_isolated(measure_point, (plan,), timeout_s, on_progress=on_progress)

    def ceilings(self, devices: set[str], timeout_s: float, fresh: bool = False) -> dict:
        """Measured matmul and bandwidth ceilings of this machine's devices (kept a week; see ceilings.py)."""
        return cached_ceilings({d for d in devices if not d.startswith("emulated")}, timeout_s, fresh=fresh)


@dataclass
class FamilyOutcome:
    """One variant family (a variant without its batch size): its sweet spot and why growth stopped."""

    family: str
    sweet_spot_batch: int | None
    best_samples_per_s: float | None
    stop_reason: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class SweepResult:
    run_id: int
    resumed: bool
    measured: int = 0
    reused: int = 0
    families: list[FamilyOutcome] = field(default_factory=list)


def sweep(
    model: Model,
    spec: SweepSpec,
    store: ResultsStore,
    observer: SweepObserver,
    fresh: bool = False,
    args: dict | None = None,
    executor: PointExecutor | None = None,
) -> SweepResult:
    executor = executor or LocalExecutor()
    families = plan_families(model, spec)
    observer.planned(sum(len(spec.batch_plan()) if reason is None else 1 for _, reason in families))
    run, resumed = _open_run(model, spec, store, fresh, args or {})
    result = SweepResult(run.id, resumed)
    try:
        observer.stage(CEILINGS_STAGE)
        devices = {v.device for v, reason in families if reason is None}
        ceilings = machine_ceilings(store, run.id, devices, spec, executor, fresh)
        observer.stage("computing the fp32 reference outputs")
        reference, reference_inputs = _reference(model, spec)
        done = {m.variant_key: m for m in store.measurements(run.id)}

        def one_family(family_store: ResultsStore, template: Variant, reason: str | None) -> FamilyOutcome:
            context = _Context(model, spec, family_store, run.id, done, ceilings, (reference, reference_inputs))
            return _sweep_family(context, template, reason, observer, result, executor)

        result.families.extend(_each_family(families, store, executor, one_family))
        store.set_run_extra(run.id, "families", [f.to_dict() for f in result.families])
        store.finish_run(run.id, "complete")
    except KeyboardInterrupt:
        store.finish_run(run.id, "interrupted", "stopped by the user; run the same command again to resume")
        raise
    except BaseException as error:
        store.finish_run(run.id, "failed", f"{type(error).__name__}: {error}")
        raise
    return result


@dataclass
class _Context:
    """What measuring a point needs from its sweep (or point session)."""

    model: Model
    spec: SweepSpec
    store: ResultsStore
    run_id: int
    done: dict
    ceilings: dict
    reference: tuple


_COUNT_LOCK = threading.Lock()


def _each_family(families, store: ResultsStore, executor: PointExecutor, one_family) -> list[FamilyOutcome]:
    """Each family's outcome, in the planned order: one at a time, or `executor.concurrency` at once,
    each thread with its own connection to the store (a SQLite connection belongs to its thread).

    Ctrl-C (or any error) in one family stops the others: families not started never start, and the
    executor's `interrupt` makes the points in flight end without being recorded, so the run resumes
    where it stopped."""
    if executor.concurrency <= 1 or len(families) <= 1:
        return [one_family(store, template, reason) for template, reason in families]

    def in_thread(template: Variant, reason: str | None) -> FamilyOutcome:
        with open_store(store.path) as own:
            return one_family(own, template, reason)

    pool = ThreadPoolExecutor(max_workers=executor.concurrency, thread_name_prefix="hwfit-family")
    futures = [pool.submit(in_thread, template, reason) for template, reason in families]
    try:
        wait(futures, return_when=FIRST_EXCEPTION)  # a family that fails or is interrupted stops the rest now
        return [future.result() for future in futures]
    except BaseException:
        for future in futures:
            future.cancel()
        interrupt = getattr(executor, "interrupt", None)
        if interrupt is not None:
            interrupt()
        wait(futures, timeout=INTERRUPT_WAIT_S)  # the points in flight stop; their threads write nothing more
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def plan_families(model: Model, spec: SweepSpec) -> list[tuple[Variant, str | None]]:
    """One template variant (batch 1) per backend × device × precision × threads × knobs, with the
    reason it cannot run here (None if it can)."""
    families = []
    threads_options = spec.threads or [None]
    for backend in spec.backends or backend_names():
        for knobs in _with_replicas(knob_combinations(spec, backend), spec.replicas or [1]):
            for threads in threads_options:
                rows = candidate_variants(model, [backend], spec.devices, spec.precisions, [1], threads)
                for variant, reason in rows:
                    templated = Variant(variant.backend, variant.device, variant.precision, 1, threads, knobs)
                    families.append((templated, reason or get_backend(backend).unavailable_reason(model, templated)))
    return families


def _with_replicas(knob_sets, replica_counts: list[int]):
    """Each knob combination once per replica count; one replica adds no knob (keys stay short)."""
    return [knobs + ((("replicas", str(k)),) if k > 1 else ()) for knobs in knob_sets for k in replica_counts]


def _open_run(model: Model, spec: SweepSpec, store: ResultsStore, fresh: bool, args: dict):
    from hwfit.profile.environment import capture_environment

    sweep_key = spec.key(model.content_hash)
    environment = capture_environment()
    if not fresh:
        existing = store.find_resumable_run(model.content_hash, sweep_key) or _finished_twin(
            store, model, sweep_key, environment
        )
        if existing is not None:
            return existing, True
    run = store.start_run(
        model.name, model.source, model.content_hash, sweep_key, {**args, "spec": spec.model_dump()}, environment
    )
    return run, False


def _finished_twin(store: ResultsStore, model: Model, sweep_key: str, environment):
    """A complete run of the same sweep in the same environment: its points are reused (--fresh measures anew)."""
    for run in store.list_runs(model=model.content_hash, limit=200):
        if run.sweep_key == sweep_key and run.status == "complete" and run.environment.key() == environment.key():
            return run
    return None


def machine_ceilings(
    store: ResultsStore,
    run_id: int,
    devices: set[str],
    spec: SweepSpec,
    executor: PointExecutor | None = None,
    fresh: bool = False,
) -> dict:
    """Measured matmul and bandwidth ceilings per device, recorded with the run (kept for resumes);
    the machine's, reused from the cache unless `fresh`."""
    known = store.run_extra(run_id).get("ceilings")
    if known is not None:
        return known
    ceilings = (executor or LocalExecutor()).ceilings(devices, spec.timeout_s, fresh)
    store.set_run_extra(run_id, "ceilings", ceilings)
    return ceilings


def _reference(model: Model, spec: SweepSpec):
    inputs, _ = model.sample_inputs(REFERENCE_SAMPLES, seed=REFERENCE_SEED)
    outcome = run_isolated(_reference_job, (model.source, model.inputs, inputs), spec.timeout_s)
    if not outcome.ok:
        raise HwfitError(
            f"the fp32 reference run of {model.name} failed, so accuracy cannot be judged: {outcome.reason}"
        )
    return outcome.value, inputs


def _sweep_family(
    context: _Context, template: Variant, reason: str | None, observer, result: SweepResult, executor: PointExecutor
) -> FamilyOutcome:
    spec = context.spec
    family = template.curve_key
    if reason:
        skipped = Measurement(template.key, template.to_dict(), "skipped", reason)
        context.store.record(context.run_id, skipped)
        observer.point_finished(template, skipped, reused=False)
        return FamilyOutcome(family, None, None, f"cannot run here: {reason}")
    best: Measurement | None = None
    previous: Measurement | None = None
    plan = spec.batch_plan()
    for index, batch in enumerate(plan):
        variant = Variant(
            template.backend, template.device, template.precision, batch, template.threads, template.knobs
        )
        measurement, reused = _measure_or_reuse(context, variant, observer, executor)
        with _COUNT_LOCK:
            result.reused += reused
            result.measured += not reused
        stop = _growth_stop(spec, measurement, previous, best)
        within_cap = not _over_latency_cap(spec, measurement)  # a batch over the cap is no sweet spot
        if (
            is_usable(measurement.status)
            and within_cap
            and (best is None or measurement.samples_per_s > best.samples_per_s)
        ):
            best = measurement
        if is_usable(measurement.status):
            previous = measurement
        if stop:
            observer.family_finished(FamilyOutcome(family, None, None, stop), len(plan) - index - 1)
            return FamilyOutcome(family, _batch(best), _rate(best), stop)
    return FamilyOutcome(family, _batch(best), _rate(best), "every batch size in the plan was measured")


def _growth_stop(
    spec: SweepSpec, measurement: Measurement, previous: Measurement | None, best: Measurement | None
) -> str | None:
    """Why to stop growing the batch after this point, or None to go on."""
    batch = measurement.variant["batch_size"]
    if measurement.status == "failed":
        memory = any(word in (measurement.reason or "").lower() for word in ("memory", "sigkill", "alloc"))
        return (
            f"memory ran out at batch {batch}: {measurement.reason}"
            if memory
            else f"batch {batch} failed: {measurement.reason}"
        )
    if not spec.grows:
        return None
    if _over_latency_cap(spec, measurement):
        return (
            f"batch {batch} takes {measurement.latency.p50_ms:.0f} ms (p50), above the {spec.max_latency_ms:.0f} ms cap"
        )
    reference = best or previous
    if reference is not None and measurement.samples_per_s < reference.samples_per_s * (1 + spec.min_gain):
        gain = measurement.samples_per_s / reference.samples_per_s - 1
        verb = "rose only" if gain > 0 else "fell"
        return (
            f"throughput {verb} {abs(gain):.1%} from batch {reference.variant['batch_size']} to {batch} "
            f"(growth needs +{spec.min_gain:.0%}): sweet spot found"
        )
    return None


def _over_latency_cap(spec: SweepSpec, measurement: Measurement) -> bool:
    """Whether a point's p50 is past the sweep's latency cap (never, without a cap)."""
    latency = measurement.latency
    return bool(spec.max_latency_ms and latency and latency.p50_ms > spec.max_latency_ms)


def _measure_or_reuse(context: _Context, variant: Variant, observer, executor: PointExecutor):
    done, spec = context.done, context.spec
    if variant.key in done and done[variant.key].status != "skipped":
        observer.point_finished(variant, done[variant.key], reused=True)
        return done[variant.key], True
    observer.point_started(variant)
    plan = _point_plan(context.model, spec, variant, context.ceilings, context.reference)
    attempts = []
    for _ in range(spec.processes):
        outcome = executor.measure(
            plan,
            spec.timeout_s + spec.budget_s + spec.warmup_s,
            lambda message: observer.point_progress(variant, message),
        )
        if not outcome.ok:
            attempts = [Measurement(variant.key, variant.to_dict(), "failed", outcome.reason)]
            attempts[0].wall_s = outcome.wall_s
            attempts[0].details.update(outcome.where)
            break
        outcome.value.wall_s = outcome.wall_s
        outcome.value.details.update(outcome.where)
        attempts.append(outcome.value)
    measurement = combine_processes(attempts, spec.target_ci)
    context.store.record(context.run_id, measurement)
    done[variant.key] = measurement
    observer.point_finished(variant, measurement, reused=False)
    return measurement, False


def combine_processes(attempts: list[Measurement], target_rel: float) -> Measurement:
    """One point measured in several processes: keep the process with the median p50, and flag the
    point unstable when the processes' medians spread wider than twice the CI target."""
    if len(attempts) == 1:
        return attempts[0]
    ordered = sorted(attempts, key=lambda m: m.latency.p50_ms)
    chosen = ordered[len(ordered) // 2]
    # Every process is one round of the point (kept for regression checks), in the order they ran.
    chosen.rounds = [sample for m in attempts for sample in (m.rounds or [m.round_sample()])]
    p50s = [m.latency.p50_ms for m in attempts]
    spread = max(p50s) / min(p50s) - 1
    chosen.details["process_p50_ms"] = p50s
    chosen.wall_s = sum(m.wall_s or 0.0 for m in attempts)
    if spread > 2 * target_rel:
        chosen.status = "unstable"
        chosen.reason = (
            f"p50 differs by {spread:.1%} across {len(attempts)} processes "
            f"({', '.join(f'{p:.2f}' for p in p50s)} ms): the machine is noisy between runs"
        )
    return chosen


def _point_plan(model: Model, spec: SweepSpec, variant: Variant, ceilings: dict, reference) -> PointPlan:
    from hwfit.hardware import peak_flops

    dtype = PRECISION_DTYPE[variant.precision]
    device_ceilings = ceilings.get(variant.device, {})
    spec_peak = None
    if not variant.device.startswith("emulated"):
        figure = peak_flops(variant.device, dtype)
        spec_peak = figure.value if figure else None
    cost = model.cost(variant.batch_size)
    outputs, inputs = reference
    return PointPlan(
        model.source,
        model.inputs,
        variant,
        stop=StopRule(target_rel=spec.target_ci, budget_s=spec.budget_s),
        warmup=WarmupRule(budget_s=spec.warmup_s),
        reference=outputs,
        reference_inputs=inputs,
        flops_per_sample=cost.flops_per_sample,
        min_bytes_per_batch=cost.min_bytes,
        measured_peak_flops=(device_ceilings.get("matmul_flops") or {}).get(dtype),
        spec_peak_flops=spec_peak,
        bandwidth_bytes_per_s=device_ceilings.get("mem_bandwidth"),
    )


def _batch(measurement: Measurement | None) -> int | None:
    return measurement.variant["batch_size"] if measurement else None


def _rate(measurement: Measurement | None) -> float | None:
    return measurement.samples_per_s if measurement else None


# --- measuring chosen points (for the planner's measure-few search) -----------------------------


@dataclass
class PointSession:
    """An open run that measures the points it is asked for, one process each, recording every one.

    The planner's search asks for a few points at a time; each call to `measure` records them in
    the same run, so an interrupted `hwfit plan` leaves its points in the store for the next one.
    """

    model: Model
    spec: SweepSpec
    store: ResultsStore
    observer: SweepObserver
    run_id: int
    ceilings: dict
    reference: tuple
    done: dict
    executor: PointExecutor = field(default_factory=LocalExecutor)

    def measure(self, variants: list[Variant]) -> list[Measurement]:
        measured = []
        for variant in variants:
            reason = get_backend(variant.backend).unavailable_reason(self.model, variant)
            if reason:
                measurement = Measurement(variant.key, variant.to_dict(), "skipped", reason)
                self.store.record(self.run_id, measurement)
                self.observer.point_finished(variant, measurement, reused=False)
            else:
                context = _Context(
                    self.model, self.spec, self.store, self.run_id, self.done, self.ceilings, self.reference
                )
                measurement, _ = _measure_or_reuse(context, variant, self.observer, self.executor)
            measured.append(measurement)
        return measured

    def close(self, status: str = "complete", note: str | None = None) -> None:
        self.store.finish_run(self.run_id, status, note)


def open_point_session(
    model: Model,
    spec: SweepSpec,
    store: ResultsStore,
    observer: SweepObserver,
    devices: set[str],
    args: dict | None = None,
    executor: PointExecutor | None = None,
) -> PointSession:
    """Start a run for points chosen one call at a time: measure ceilings and the reference once."""
    executor = executor or LocalExecutor()
    from hwfit.profile.environment import capture_environment

    environment = capture_environment()
    sweep_key = "points:" + spec.key(model.content_hash)
    run = store.start_run(
        model.name,
        model.source,
        model.content_hash,
        sweep_key,
        {**(args or {}), "spec": spec.model_dump()},
        environment,
    )
    observer.stage(CEILINGS_STAGE)
    ceilings = machine_ceilings(store, run.id, devices, spec, executor)
    observer.stage("computing the fp32 reference outputs")
    reference = _reference(model, spec)
    return PointSession(model, spec, store, observer, run.id, ceilings, reference, {}, executor)
