"""Which way is better for each metric hwfit compares (plans, Pareto fronts, regression checks),
and which metric each planning objective optimises."""

from __future__ import annotations

import math

DIRECTIONS = ("min", "max")

# metric -> "min" (lower is better) or "max" (higher is better)
METRIC_DIRECTIONS: dict[str, str] = {
    "p50_ms": "min",
    "p90_ms": "min",
    "p99_ms": "min",
    "p999_ms": "min",
    "mean_ms": "min",
    "samples_per_s": "max",
    "capacity_rps": "max",
    "accuracy_loss": "min",
    "j_per_inference": "min",
    "energy_j_per_sample": "min",
    "cost_per_million": "min",
    "peak_rss_delta_bytes": "min",
    "device_memory_peak_bytes": "min",
    "cosine_mean": "max",
    "top1_agreement": "max",
    "task_accuracy": "max",
}

# SLO objective -> the metric it optimises
OBJECTIVE_METRICS: dict[str, str] = {
    "cost": "cost_per_million",
    "energy": "j_per_inference",
    "latency": "p99_ms",
    "throughput": "capacity_rps",
}


def direction(metric: str) -> str:
    """'min' or 'max' for a known metric; KeyError names the metrics that have one."""
    try:
        return METRIC_DIRECTIONS[metric]
    except KeyError:
        raise KeyError(f"no direction for metric {metric!r}; known: {', '.join(METRIC_DIRECTIONS)}") from None


def to_minimise(metric: str, value: float | None) -> float:
    """The value on a lower-is-better scale (higher-is-better metrics negated); inf when unknown
    or zero for a higher-is-better metric (nothing to offer)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.inf
    if direction(metric) == "max":
        return -value if value else math.inf
    return value


def worst(metric: str) -> float:
    """The worst value of a metric: what an unknown value counts as when ranking."""
    return math.inf if direction(metric) == "min" else 0.0
