"""Hand-made measurements for planner tests: points of a known service-time curve."""

from __future__ import annotations

from hwfit.core import Variant
from hwfit.store import LatencyStats, Measurement


def point(
    backend: str,
    precision: str,
    batch: int,
    mean_ms: float,
    *,
    device: str = "cpu",
    threads: int | None = 2,
    replicas: int = 1,
    cosine: float | None = 1.0,
    top1: float | None = None,
    joules: float | None = None,
    jitter: float = 0.05,
    status: str = "ok",
    reason: str | None = None,
) -> Measurement:
    """One measured point whose batch latency has mean `mean_ms` and p99 (1 + jitter) x mean."""
    knobs = {"replicas": str(replicas)} if replicas > 1 else {}
    variant = {
        "backend": backend,
        "device": device,
        "precision": precision,
        "batch_size": batch,
        "threads": threads,
        "knobs": knobs,
    }
    variant["key"] = Variant.from_dict(variant).key
    if status == "failed":
        return Measurement(variant["key"], variant, "failed", reason or "failed")
    latency = LatencyStats(
        count=100,
        p50_ms=mean_ms,
        p90_ms=mean_ms * (1 + jitter / 2),
        p99_ms=mean_ms * (1 + jitter),
        p999_ms=mean_ms * (1 + 2 * jitter),
        mean_ms=mean_ms,
        std_ms=mean_ms * jitter / 3,
        min_ms=mean_ms * 0.97,
        max_ms=mean_ms * (1 + 3 * jitter),
        ci95_low_ms=mean_ms * 0.99,
        ci95_high_ms=mean_ms * 1.01,
    )
    return Measurement(
        variant["key"],
        variant,
        status,
        reason,
        latency=latency,
        samples_per_s=batch * replicas * 1000.0 / mean_ms,
        cosine_mean=cosine,
        top1_agreement=top1,
        energy_j_per_sample=joules,
        energy_how="estimated" if joules is not None else None,
    )


def curve_points(
    backend: str, precision: str, base_ms: float, per_sample_ms: float, batches=(1, 2, 4, 8, 16, 32), **kwargs
) -> list[Measurement]:
    """Points of s(b) = base + per_sample * b at each batch size."""
    return [point(backend, precision, b, base_ms + per_sample_ms * b, **kwargs) for b in batches]
