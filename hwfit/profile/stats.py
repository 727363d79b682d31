"""Measurement statistics: percentiles, a distribution-free confidence interval of the median,
and the two rules that decide how long a point runs (warm-up settled, median known to ±2%)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z_95 = 1.959964


def median_ci95(latencies_s: list[float] | np.ndarray) -> tuple[float, float]:
    """95% CI of the median from order statistics (no assumption on the distribution's shape).

    Ranks n/2 ± 1.96·√n/2 of the sorted sample (the binomial normal approximation); needs n ≥ 6
    for the interval to lie inside the sample, else the whole range is returned.
    """
    values = np.sort(np.asarray(latencies_s, dtype=np.float64))
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    half_width = Z_95 * math.sqrt(n) / 2.0
    low_rank = max(int(math.floor(n / 2.0 - half_width)), 0)
    high_rank = min(int(math.ceil(n / 2.0 + half_width)), n - 1)
    return float(values[low_rank]), float(values[high_rank])


def ci_relative_half_width(latencies_s: list[float] | np.ndarray) -> float:
    """Half the width of the median's 95% CI, as a share of the median."""
    low, high = median_ci95(latencies_s)
    median = float(np.median(latencies_s))
    return (high - low) / 2.0 / median if median > 0 else math.inf


@dataclass(frozen=True)
class StopRule:
    """When a point has measured enough: the median's 95% CI within ±`target_rel`, after at least
    `min_runs` runs and `min_seconds`; or the budget is spent (then the point is `unstable`)."""

    target_rel: float = 0.02
    min_runs: int = 10
    min_seconds: float = 0.5
    budget_s: float = 10.0

    def settled(self, latencies_s: list[float], elapsed_s: float) -> bool:
        if len(latencies_s) < self.min_runs or elapsed_s < self.min_seconds:
            return False
        return ci_relative_half_width(latencies_s) <= self.target_rel

    def exhausted(self, elapsed_s: float) -> bool:
        return elapsed_s >= self.budget_s


@dataclass(frozen=True)
class WarmupRule:
    """Warm up until latency settles: the median of the last window within `tolerance_rel` of the
    window before it (JIT, allocator and cache effects have passed), or the budget is spent."""

    window: int = 5
    tolerance_rel: float = 0.05
    min_runs: int = 3
    budget_s: float = 5.0

    def settled(self, latencies_s: list[float]) -> bool:
        if len(latencies_s) < max(self.min_runs, 2 * self.window):
            return False
        last = float(np.median(latencies_s[-self.window :]))
        before = float(np.median(latencies_s[-2 * self.window : -self.window]))
        return abs(last - before) <= self.tolerance_rel * before


def latency_summary(latencies_s: list[float]) -> dict:
    """The figures a LatencyStats holds, in milliseconds."""
    values = np.asarray(latencies_s, dtype=np.float64) * 1000.0
    low, high = median_ci95(values)
    return {
        "count": int(len(values)),
        "p50_ms": float(np.percentile(values, 50)),
        "p90_ms": float(np.percentile(values, 90)),
        "p99_ms": float(np.percentile(values, 99)),
        "p999_ms": float(np.percentile(values, 99.9)),
        "mean_ms": float(values.mean()),
        "std_ms": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "min_ms": float(values.min()),
        "max_ms": float(values.max()),
        "ci95_low_ms": low,
        "ci95_high_ms": high,
    }
