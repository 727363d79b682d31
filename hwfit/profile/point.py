"""Measuring one point (one variant), inside its own process: load, check accuracy against the
fp32 reference, warm up until latency settles, then run until the median is known to ±2% or the
budget is spent; with memory, energy, achieved FLOP/s and the roofline position."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from hwfit.backends import Runner, get_backend, load_variant
from hwfit.core import Variant
from hwfit.models import Model, compare_outputs, evaluate_accuracy
from hwfit.profile.quick import reload_model, run_in_batches
from hwfit.profile.replicas import measure_replicas, replica_count
from hwfit.profile.stats import StopRule, WarmupRule, ci_relative_half_width, latency_summary
from hwfit.store import LatencyStats, Measurement
from hwfit.telemetry.memory import peak_rss_bytes, restart_peak_rss, rss_bytes

PROGRESS_EVERY_S = 0.5
BREAKDOWN_REPEATS = 10


@dataclass(frozen=True)
class PointPlan:
    """Everything a point's process needs, picklable: what to run, how long, and the machine's limits."""

    model_source: str
    model_inputs: object  # InputSpec
    variant: Variant
    stop: StopRule
    warmup: WarmupRule
    reference: Mapping[str, np.ndarray]
    reference_inputs: Mapping[str, np.ndarray]
    flops_per_sample: float | None = None
    min_bytes_per_batch: float | None = None
    measured_peak_flops: float | None = None  # this machine's measured matmul ceiling for the dtype
    spec_peak_flops: float | None = None  # datasheet or computed peak for the dtype
    bandwidth_bytes_per_s: float | None = None  # measured (CPU) or spec (GPU) memory bandwidth
    details: dict = field(default_factory=dict)


def measure_point(plan: PointPlan, report: Callable[[dict], None] | None = None) -> Measurement:
    """Runs in the point's process (see `isolation.run_isolated`)."""
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    wall_started = time.perf_counter()
    report = report or (lambda message: None)
    model = reload_model(plan.model_source, plan.model_inputs)
    get_backend(plan.variant.backend).preload()
    meter = _energy_meter(plan.variant.device)
    rss_before = rss_bytes()  # after imports: the increase is the model, its runtime state and buffers
    restart_peak_rss()  # what building the model before this cost is not the variant's
    report({"phase": "loading"})
    replicas = replica_count(plan.variant)
    with load_variant(model, plan.variant) as runner:
        measurement = Measurement(
            plan.variant.key,
            plan.variant.to_dict(),
            "ok",
            started_at=started_at,
            load_s=runner.stats.load_s,
            convert_s=runner.stats.convert_s,
            compile_s=runner.stats.compile_s,
            details={"notes": list(runner.stats.notes)},
        )
        report({"phase": "accuracy"})
        _accuracy(model, runner, plan, measurement)
    if replicas > 1:
        return _measure_replicas(plan, measurement, report, wall_started)
    with load_variant(model, plan.variant) as runner:
        # Peak device memory is this runner's, not the accuracy runner's (torch keeps one count per process).
        runner.reset_device_memory_peak()
        inputs = model.synthetic_inputs(plan.variant.batch_size)
        warmup_runs = _warm_up(runner, inputs, plan.warmup, report)
        latencies, energy, status, reason = _measure(runner, inputs, plan, meter, report)
        if runner.supports_device_io:
            _transfer_breakdown(runner, inputs, measurement)
        measurement.details.update({"warmup_runs": warmup_runs, "stop": reason or "median 95% CI within target"})
    _fill_timing(measurement, plan, latencies, status, reason)
    _fill_energy(measurement, energy, len(latencies) * plan.variant.batch_size)
    _fill_compute(measurement, plan)
    measurement.peak_rss_delta_bytes = max(peak_rss_bytes()[0] - rss_before, 0)
    measurement.wall_s = time.perf_counter() - wall_started
    measurement.rounds = [measurement.round_sample()]  # this process is one round of the point
    return measurement


def _measure_replicas(plan: PointPlan, measurement: Measurement, report, wall_started: float) -> Measurement:
    """K replicas running together (the accuracy runner is closed first so it takes no memory or cores)."""
    measurement = measure_replicas(plan, measurement, report)
    _fill_compute(measurement, plan)
    measurement.wall_s = time.perf_counter() - wall_started
    measurement.rounds = [measurement.round_sample()]
    return measurement


def _accuracy(model: Model, runner: Runner, plan: PointPlan, measurement: Measurement) -> None:
    outputs = run_in_batches(runner, plan.reference_inputs, plan.variant.batch_size)
    agreement = compare_outputs(model, outputs, plan.reference)
    measurement.max_abs_error = agreement.max_abs_error
    measurement.cosine_mean = agreement.cosine_mean
    measurement.cosine_min = agreement.cosine_min
    measurement.top1_agreement = agreement.top1_agreement
    measurement.task_accuracy = evaluate_accuracy(model, runner.run, plan.variant.batch_size)


def _warm_up(runner: Runner, inputs, rule: WarmupRule, report) -> int:
    latencies: list[float] = []
    started = time.perf_counter()
    while not rule.settled(latencies) and time.perf_counter() - started < rule.budget_s:
        run_started = time.perf_counter()
        runner.run_unchecked(inputs)
        latencies.append(time.perf_counter() - run_started)
    report({"phase": "warm-up done", "runs": len(latencies)})
    return len(latencies)


def _measure(runner: Runner, inputs, plan: PointPlan, meter, report):
    """Timed runs inside an energy window until the stop rule is met or the budget is spent."""
    if meter:
        meter.begin()
    latencies, status, reason = timed_runs(runner, inputs, plan.stop, report)
    energy = meter.end() if meter else None
    return latencies, energy, status, reason


def timed_runs(runner: Runner, inputs, stop: StopRule, report=None) -> tuple[list[float], str, str | None]:
    """Run until the median's 95% CI is within the target (status ok) or the budget is spent
    (status unstable, with the spread reached). Returns per-run latencies in seconds."""
    report = report or (lambda message: None)
    latencies: list[float] = []
    started = last_report = time.perf_counter()
    while True:
        run_started = time.perf_counter()
        runner.run_unchecked(inputs)
        now = time.perf_counter()
        latencies.append(now - run_started)
        elapsed = now - started
        if stop.settled(latencies, elapsed):
            return latencies, "ok", None
        if stop.exhausted(elapsed):
            spread = ci_relative_half_width(latencies)
            if spread <= stop.target_rel:
                return latencies, "ok", None
            return (
                latencies,
                "unstable",
                (
                    f"budget of {stop.budget_s:.0f} s spent with the median's 95% CI at "
                    f"±{spread:.1%} (target ±{stop.target_rel:.0%}) after {len(latencies)} runs"
                ),
            )
        if now - last_report >= PROGRESS_EVERY_S:
            last_report = now
            report(
                {
                    "phase": "measuring",
                    "runs": len(latencies),
                    "p50_ms": float(np.median(latencies)) * 1000,
                    "ci": ci_relative_half_width(latencies),
                    "elapsed_s": elapsed,
                }
            )


def _energy_meter(device: str):
    if device.startswith("emulated"):
        return None  # an emulated device draws no power of its own; _fill_energy says so
    try:
        from hwfit.telemetry import EnergyMeter
    except ImportError:
        return None
    return EnergyMeter(device)


def _transfer_breakdown(runner: Runner, inputs, measurement: Measurement) -> None:
    """Host→device, compute on device-resident data, device→host: timed apart, medians of a few repeats."""
    h2d, compute, d2h = [], [], []
    for _ in range(BREAKDOWN_REPEATS):
        t0 = time.perf_counter()
        handle = runner.to_device(inputs)
        runner.synchronize()
        t1 = time.perf_counter()
        result = runner.run_on_device(handle)
        runner.synchronize()
        t2 = time.perf_counter()
        runner.to_host(result)
        t3 = time.perf_counter()
        h2d.append(t1 - t0), compute.append(t2 - t1), d2h.append(t3 - t2)
    measurement.h2d_ms = float(np.median(h2d)) * 1000
    measurement.compute_ms = float(np.median(compute)) * 1000
    measurement.d2h_ms = float(np.median(d2h)) * 1000
    measurement.device_memory_peak_bytes = runner.device_memory_peak_bytes()


def _fill_timing(measurement: Measurement, plan: PointPlan, latencies: list[float], status: str, reason) -> None:
    measurement.latency = LatencyStats(**latency_summary(latencies))
    measurement.samples_per_s = plan.variant.batch_size * len(latencies) / sum(latencies)
    measurement.status, measurement.reason = status, reason


def _fill_energy(measurement: Measurement, reading, samples: int) -> None:
    if reading is None:
        emulated = str(measurement.variant.get("device", "")).startswith("emulated")
        measurement.energy_note = (
            "EMULATED device: it draws no power of its own, so there is no energy figure"
            if emulated
            else "hwfit.telemetry is not available"
        )
        return
    measurement.energy_j_per_sample = reading.joules_per(samples)
    measurement.energy_how = reading.how
    measurement.energy_note = reading.formula if reading.how == "estimated" else (reading.reason or reading.source)


def _fill_compute(measurement: Measurement, plan: PointPlan) -> None:
    if not plan.flops_per_sample or not measurement.samples_per_s:
        return
    achieved = plan.flops_per_sample * measurement.samples_per_s
    measurement.flops_per_sample = plan.flops_per_sample
    measurement.achieved_flops_per_s = achieved
    if plan.measured_peak_flops:
        measurement.mfu_vs_measured = achieved / plan.measured_peak_flops
    if plan.spec_peak_flops:
        measurement.mfu_vs_spec = achieved / plan.spec_peak_flops
    if plan.min_bytes_per_batch:
        intensity = plan.flops_per_sample * plan.variant.batch_size / plan.min_bytes_per_batch
        measurement.arithmetic_intensity = intensity
        peak = plan.measured_peak_flops or plan.spec_peak_flops
        if peak and plan.bandwidth_bytes_per_s:
            ridge = peak / plan.bandwidth_bytes_per_s
            measurement.roofline_bound = "compute" if intensity >= ridge else "memory"
            measurement.details["roofline_ridge_flops_per_byte"] = ridge
