"""K replicas × t threads as one point: K processes, each with its own runner, started together
behind a barrier and timed over the same window. Replicas on one CPU share its cores, caches and
memory bandwidth, so their joint throughput is measured, never taken as K times one replica's."""

from __future__ import annotations

import multiprocessing
import time
from datetime import datetime, timezone
from typing import Any, NamedTuple

from hwfit.backends import get_backend, load_variant
from hwfit.core import BackendError, Variant
from hwfit.store import LatencyStats, Measurement

BARRIER_TIMEOUT_S = 600.0


class ReplicaReport(NamedTuple):
    """What one replica's process sends back over the shared window."""

    index: int
    status: str  # "ok" or "error"
    latencies: list[float]  # seconds per run
    elapsed_s: float
    peak_bytes: int
    reading: Any  # the energy meter's reading, or None
    cpu_s: float
    error: str = ""

    def samples_per_s(self, batch: int) -> float:
        return 0.0 if self.elapsed_s <= 0 else batch * len(self.latencies) / self.elapsed_s


def replica_count(variant: Variant) -> int:
    text = variant.knob("replicas", "1")
    if not str(text).isdigit() or int(text) < 1:
        raise BackendError(f"{variant.key}: replicas must be a positive integer, got {text!r}")
    return int(text)


def _replica(plan, barrier, results, index: int) -> None:
    """One replica's process: load, warm up, wait for the others, run the shared window, report."""
    from hwfit.profile.point import _energy_meter, _warm_up
    from hwfit.profile.quick import reload_model
    from hwfit.telemetry.estimate import process_cpu_seconds
    from hwfit.telemetry.memory import peak_rss_bytes, restart_peak_rss, rss_bytes

    try:
        model = reload_model(plan.model_source, plan.model_inputs)
        get_backend(plan.variant.backend).preload()
        rss_before = rss_bytes()
        restart_peak_rss()
        with load_variant(model, plan.variant) as runner:
            inputs = model.synthetic_inputs(plan.variant.batch_size)
            _warm_up(runner, inputs, plan.warmup, lambda message: None)
            meter = _energy_meter(plan.variant.device)
            barrier.wait(BARRIER_TIMEOUT_S)
            window_end = time.perf_counter() + plan.stop.budget_s
            latencies = []
            if meter:
                meter.begin()
            cpu_started = process_cpu_seconds()
            started = time.perf_counter()
            while time.perf_counter() < window_end:
                run_started = time.perf_counter()
                runner.run_unchecked(inputs)
                latencies.append(time.perf_counter() - run_started)
            elapsed = time.perf_counter() - started
            cpu_s = process_cpu_seconds() - cpu_started
            reading = meter.end() if meter else None
        peak = max(peak_rss_bytes()[0] - rss_before, 0)
        results.put(ReplicaReport(index, "ok", latencies, elapsed, peak, reading, cpu_s))
    except BaseException as error:  # a replica's failure fails the point, with its reason
        barrier.abort()
        why = f"replica {index}: {type(error).__name__}: {error}"
        results.put(ReplicaReport(index, "error", [], 0.0, 0, None, 0.0, why))


def measure_replicas(plan, measurement: Measurement, report) -> Measurement:
    """Fill `measurement` (accuracy already checked on one runner) with the K replicas' joint figures."""
    count = replica_count(plan.variant)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(count)
    results = context.Queue()
    processes = [context.Process(target=_replica, args=(plan, barrier, results, i), daemon=True) for i in range(count)]
    report({"phase": f"starting {count} replicas"})
    for process in processes:
        process.start()
    outcomes = [results.get() for _ in processes]
    for process in processes:
        process.join(30)
    errors = [o.error for o in outcomes if o.status == "error"]
    if errors:
        measurement.status, measurement.reason = "failed", "; ".join(errors)
        return measurement
    return _fill_joint(plan, measurement, outcomes)


def _fill_joint(plan, measurement: Measurement, outcomes: list[ReplicaReport]) -> Measurement:
    from hwfit.profile.stats import ci_relative_half_width, latency_summary

    batch = plan.variant.batch_size
    latencies = [latency for outcome in outcomes for latency in outcome.latencies]
    if len(latencies) < 2:
        measurement.status = "failed"
        measurement.reason = f"the {len(outcomes)} replicas finished fewer than 2 runs in {plan.stop.budget_s:.0f} s"
        return measurement
    measurement.latency = LatencyStats(**latency_summary(latencies))
    measurement.samples_per_s = sum(o.samples_per_s(batch) for o in outcomes)
    measurement.peak_rss_delta_bytes = sum(o.peak_bytes for o in outcomes)
    spread = ci_relative_half_width(latencies)
    if spread > plan.stop.target_rel:
        measurement.status = "unstable"
        measurement.reason = (
            f"{len(outcomes)} replicas over a {plan.stop.budget_s:.0f} s window: the median's 95% CI "
            f"is ±{spread:.1%} (target ±{plan.stop.target_rel:.0%})"
        )
    _fill_joint_energy(measurement, outcomes)
    measurement.details.update(
        {
            "replicas": len(outcomes),
            "replica_samples_per_s": [o.samples_per_s(batch) for o in outcomes],
            "stop": f"fixed shared window of {plan.stop.budget_s:.0f} s",
        }
    )
    measurement.started_at = measurement.started_at or datetime.now(timezone.utc).isoformat(timespec="seconds")
    return measurement


def _fill_joint_energy(measurement: Measurement, outcomes: list[ReplicaReport]) -> None:
    """The K replicas' energy per sample: the device's power over the shared window / their joint samples/s.

    Each replica metered its own window. A device counter (RAPL, NVML) reads the whole device, so one
    replica's reading is the device's power. The CPU estimate reads one process's CPU time, so the
    replicas' CPU times are added and the catalog's power model is applied once (its idle power counted
    once, not K times)."""
    from hwfit.telemetry.estimate import CpuPowerModel

    readings = [o.reading for o in outcomes]
    if any(r is None or r.joules is None for r in readings) or not measurement.samples_per_s:
        reasons = {r.reason for r in readings if r is not None and r.reason}
        measurement.energy_note = "; ".join(sorted(reasons)) or "no energy source for this device"
        return
    seconds = sum(o.elapsed_s for o in outcomes) / len(outcomes)
    if all(r.how == "estimated" for r in readings):
        cpu_seconds = sum(o.cpu_s * seconds / o.elapsed_s for o in outcomes if o.elapsed_s > 0)
        estimate = CpuPowerModel().estimate(seconds, cpu_seconds)
        if estimate is None:
            measurement.energy_note = "no estimate: the catalog has no cpu_power figures"
            return
        power_w, how = estimate.joules / seconds, "estimated"
        note = f"{len(outcomes)} replicas' CPU time added, then {estimate.formula}"
    else:
        first = readings[0]
        power_w, how = first.joules / first.seconds, first.how
        note = f"{first.source}: the device's power over replica 0's window, shared by {len(outcomes)} replicas"
    measurement.energy_j_per_sample = power_w / measurement.samples_per_s
    measurement.energy_how = how
    measurement.energy_note = note
