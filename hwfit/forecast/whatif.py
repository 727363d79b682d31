"""What-if hardware: a pool's service-time curve on a device that was never measured, estimated from a
measured reference by the roofline, and always labelled `estimated` with the reference and the ratio.

For a batch of b samples the model does F·b FLOPs and moves Y(b) bytes (the store's FLOP count and
arithmetic intensity of each measured point). On a device with peak rate P (of the precision) and
memory bandwidth W the roofline time is max(F·b / P, Y(b) / W): compute-bound batches scale with the
peak, memory-bound ones with bandwidth. The reference's measured time splits into a fixed overhead
(the intercept of its measured curve: framework and dispatch costs that do not scale) and the rest,
which is assumed to reach the same share of the roofline on the target:

    s_target(b) = overhead + (s_ref(b) - overhead) × roofline_target(b) / roofline_ref(b)

Targets: a catalog device key (`h100-sxm`, `l4`, ...: the datasheet's dense peak for the precision
and its bandwidth), or the reference CPU with another layout: `cpu:threads=N` (N threads per replica:
peak × N / threads, same bandwidth), `cpu:replicas=K` (K replicas side by side: each gets 1/K of the
bandwidth), `cpu:cores=N` (the pool confined to N cores: peak × N / threads).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from hwfit.core import Variant
from hwfit.forecast.simulation import ForecastError
from hwfit.hardware import Catalog, load_catalog
from hwfit.plan import PoolPlan
from hwfit.store import Measurement, ResultsStore

_CPU_TARGET = re.compile(r"cpu:(threads|replicas|cores)=(\d+)")


@dataclass(frozen=True)
class Rates:
    """A device's roofline for one precision: peak rate, memory bandwidth, and where they came from."""

    name: str
    peak_flops: float
    bandwidth_bytes_per_s: float
    how: str
    price_per_hour: float | None = None
    price_how: str = ""
    replicas: int = 1  # replicas side by side on one unit (cpu:replicas=K)


@dataclass(frozen=True)
class WhatIfCurve:
    """The estimated curve of one pool on one target, with everything used to get it."""

    target: str
    pool: str
    service_ms: dict[int, float]
    reference_ms: dict[int, float]
    ratio: dict[int, float]  # s_target / s_ref per batch
    overhead_ms: float
    bound: dict[int, str]  # compute | memory on the target, per batch
    reference: Rates
    rates: Rates
    how: str = "estimated"

    @property
    def summary(self) -> str:
        ratios = ", ".join(f"b{b}: ×{r:.3g}" for b, r in sorted(self.ratio.items()))
        return (
            f"estimated from {self.reference.name} ({self.reference.how}) by the roofline: "
            f"{ratios}; overhead {self.overhead_ms:.2f} ms kept; target {self.rates.how}"
        )


def precision_dtype(precision: str) -> str:
    """A variant precision (fp32, bf16, int8-dynamic, ...) -> the catalog dtype of its arithmetic."""
    return precision.split("-")[0]


def reference_rates(measurement: Measurement) -> Rates:
    """The reference device's roofline as the profiler saw it (peak and bandwidth behind the point's
    MFU and roofline ridge)."""
    achieved = measurement.achieved_flops_per_s
    ridge = measurement.details.get("roofline_ridge_flops_per_byte")
    if not achieved or not ridge:
        raise ForecastError(
            f"the measurement of {measurement.variant_key} has no FLOP count or roofline ridge: a what-if needs the "
            "model's FLOP and byte counts and the device's ceilings (re-profile it with `hwfit profile`)"
        )
    if measurement.mfu_vs_measured:
        peak, how = achieved / measurement.mfu_vs_measured, "measured ceiling"
    elif measurement.mfu_vs_spec:
        peak, how = achieved / measurement.mfu_vs_spec, "spec/computed peak"
    else:
        raise ForecastError(f"the measurement of {measurement.variant_key} has no MFU: no peak to scale from")
    device = measurement.variant.get("device", "?")
    return Rates(device, peak, peak / ridge, f"{how} {peak / 1e12:.3g} T/s, bandwidth {peak / ridge / 1e9:.3g} GB/s")


def target_rates(target: str, reference: Rates, variant: Variant, catalog: Catalog | None = None) -> Rates:
    """The target's roofline for the variant's precision (see the module's doc for the forms)."""
    match = _CPU_TARGET.fullmatch(target.strip().lower())
    if match:
        if not variant.device.startswith("cpu"):
            raise ForecastError(f"what-if {target!r} scales a CPU reference, but the pool runs on {variant.device}")
        knob, count = match.group(1), int(match.group(2))
        if count < 1:
            raise ForecastError(f"what-if {target!r}: the count must be >= 1")
        threads = variant.threads or 1
        if knob == "replicas":
            return Rates(
                f"cpu ×{count} replicas",
                reference.peak_flops,
                reference.bandwidth_bytes_per_s / count,
                f"the reference CPU, {count} replicas sharing its bandwidth",
                replicas=count,
            )
        scale = count / threads
        return Rates(
            f"cpu {knob}={count}",
            reference.peak_flops * scale,
            reference.bandwidth_bytes_per_s,
            f"the reference CPU's peak × {count}/{threads} ({knob}), same bandwidth",
        )
    catalog = catalog or load_catalog()
    spec = catalog.spec(target)
    if spec is None:
        known = ", ".join(s.key for s in catalog.gpus)
        raise ForecastError(
            f"what-if device {target!r} is not in the catalog; known: {known}; or cpu:threads=N, cpu:replicas=K, "
            "cpu:cores=N"
        )
    dtype = precision_dtype(variant.precision)
    peak = spec.peak_flops.get(dtype)
    if peak is None:
        raise ForecastError(
            f"{spec.name} has no {dtype} rate in the catalog (no hardware path for {variant.precision})"
        )
    bandwidth = spec.memory_bandwidth_bytes_per_s
    price = spec.price
    return Rates(
        spec.key,
        peak.value,
        bandwidth.value,
        f"{spec.name}: {dtype} dense peak {peak.value / 1e12:.4g} T/s ({peak.how}), bandwidth "
        f"{bandwidth.value / 1e9:.4g} GB/s ({bandwidth.how})",
        price.value if price is not None and price.unit.endswith("hour") else None,
        f"{price.value:g} {price.unit} ({price.how}: {price.source})"
        if price is not None
        else "no price in the catalog",
    )


def _points_of(pool: PoolPlan, store: ResultsStore, model_hash: str) -> dict[int, Measurement]:
    """The store's newest measurement of the pool's variant at each batch size of its curve."""
    base = Variant.parse(pool.variant)
    wanted = {base.with_batch(int(b)).key: int(b) for b in pool.service_ms}
    found: dict[int, Measurement] = {}
    for _run, measurement in store.measurements_for_model(model_hash):
        batch = wanted.get(measurement.variant_key)
        if batch is not None and batch not in found:
            found[batch] = measurement
    return found


def fixed_overhead_ms(curve: dict[int, float]) -> float:
    """The intercept of the least-squares line through s(b), within [0, s(smallest b)]: the part of a
    batch's time that does not grow with the batch."""
    if len(curve) < 2:
        return 0.0
    batches = np.array(sorted(curve), dtype=float)
    times = np.array([curve[int(b)] for b in batches])
    slope, intercept = np.polyfit(batches, times, 1)
    return float(np.clip(intercept, 0.0, times[0]))


def estimate_curve(
    pool: PoolPlan, target: str, store: ResultsStore, model_hash: str, catalog: Catalog | None = None
) -> WhatIfCurve:
    """The pool's service-time curve on `target`, from its measured points in the store; where the store
    holds measurements of the same variant on a GPU of the target's kind, those win (how: measured)."""
    measured = _measured_on_target(pool, target, store, model_hash, catalog)
    if measured is not None:
        return measured
    points = _points_of(pool, store, model_hash)
    if not points:
        raise ForecastError(
            f"no measurement of pool {pool.name}'s variant {pool.variant} in the store to estimate from: run "
            "`hwfit plan` (or `hwfit profile`) with the same store first"
        )
    variant = Variant.parse(pool.variant)
    reference = reference_rates(points[min(points)])
    rates = target_rates(target, reference, variant, catalog)
    curve = {int(b): float(ms) for b, ms in pool.service_ms.items() if int(b) in points}
    overhead = fixed_overhead_ms(curve)
    estimated, ratios, bounds = {}, {}, {}
    for batch, ms in curve.items():
        point = points[batch]
        flops = point.flops_per_sample * batch
        moved = flops / point.arithmetic_intensity if point.arithmetic_intensity else 0.0
        ref_s = max(flops / reference.peak_flops, moved / reference.bandwidth_bytes_per_s)
        compute_s, memory_s = flops / rates.peak_flops, moved / rates.bandwidth_bytes_per_s
        target_s = max(compute_s, memory_s)
        ratio = target_s / ref_s
        estimated[batch] = overhead + (ms - overhead) * ratio
        ratios[batch] = estimated[batch] / ms
        bounds[batch] = "compute" if compute_s >= memory_s else "memory"
    return WhatIfCurve(target, pool.name, estimated, curve, ratios, overhead, bounds, reference, rates)


def _measured_on_target(
    pool: PoolPlan, target: str, store: ResultsStore, model_hash: str, catalog: Catalog | None
) -> WhatIfCurve | None:
    if _CPU_TARGET.fullmatch(target.strip().lower()):
        return None
    spec = (catalog or load_catalog()).spec(target)
    if spec is None:
        return None
    base = Variant.parse(pool.variant)
    curve: dict[int, float] = {}
    for run, measurement in store.measurements_for_model(model_hash):
        variant = measurement.as_variant()
        same = (variant.backend, variant.precision, variant.knobs) == (base.backend, base.precision, base.knobs)
        on_target = variant.device.startswith("cuda") and any(spec.matches(n) for n in run.environment.gpu_names)
        if same and on_target and measurement.latency is not None:
            curve.setdefault(variant.batch_size, measurement.latency.p50_ms)
    if not curve:
        return None
    reference = pool.service_ms
    ratio = {b: ms / reference[b] for b, ms in curve.items() if b in reference}
    rates = Rates(spec.key, 0.0, 0.0, f"{spec.name}: measured (the store)")
    return WhatIfCurve(target, pool.name, curve, dict(reference), ratio, 0.0, {}, rates, rates, how="measured")


def with_curve(pool: PoolPlan, estimate: WhatIfCurve) -> PoolPlan:
    """The pool running the estimated curve (K replicas per unit for cpu:replicas=K)."""
    update = {
        "service_ms": estimate.service_ms,
        "replicas_per_device": pool.replicas_per_device * estimate.rates.replicas,
        "device": pool.device if estimate.target.startswith("cpu") else "cuda:0",  # the target GPU, one per unit
    }
    match = _CPU_TARGET.fullmatch(estimate.target.strip().lower())
    if match and match.group(1) in ("threads", "cores"):
        update["threads"] = int(match.group(2))
    return pool.model_copy(update=update)
