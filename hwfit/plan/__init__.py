"""Planning: SLOs, serving-latency models and the choice of a deployment; pure functions of measurements."""

from hwfit.plan.pareto import DIRECTIONS, ParetoError, ParetoSplit, pareto_front, pareto_split
from hwfit.plan.queueing import (
    PREFERENCES,
    ApproxStats,
    BatchingChoice,
    NoBatchingFit,
    PoolStats,
    QueueingError,
    ServiceCurve,
    approximate_p99_ms,
    approximate_pool,
    capacity_rps,
    choose_batching,
    load_ratio,
    simulate_pool,
)
from hwfit.plan.slo import OBJECTIVES, DeviceAllowance, Slo, SloError, load_slo, parse_slo

__all__ = [
    "DIRECTIONS",
    "ParetoError",
    "ParetoSplit",
    "pareto_front",
    "pareto_split",
    "OBJECTIVES",
    "PREFERENCES",
    "ApproxStats",
    "BatchingChoice",
    "DeviceAllowance",
    "NoBatchingFit",
    "PoolStats",
    "QueueingError",
    "ServiceCurve",
    "Slo",
    "SloError",
    "approximate_p99_ms",
    "approximate_pool",
    "capacity_rps",
    "choose_batching",
    "load_ratio",
    "load_slo",
    "parse_slo",
    "simulate_pool",
]
