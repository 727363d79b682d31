"""Simulation of serving: a pool's service-time curve, a discrete-event model of a pool as `serve`
runs it (dynamic batcher, replicas, measured jitter), and fast queueing approximations of it.
Pure functions of service-time curves; imports only `hwfit.core`."""

from hwfit.simulate.approximation import ApproxStats, approximate_p99_ms, approximate_pool, mean_batch_size
from hwfit.simulate.curve import (
    QUEUE_BATCHES_PER_REPLICA,
    QueueingError,
    ServiceCurve,
    as_curve,
    capacity_rps,
    check_pool,
    load_ratio,
    queue_bound_samples,
)
from hwfit.simulate.events import PoolStats, simulate_pool
from hwfit.simulate.prediction import (
    ArrivalRate,
    PoolLoad,
    predict_completion_s,
    waits_for_delay,
)
from hwfit.simulate.serving import (
    HostModel,
    PoolResult,
    ServingResult,
    SimPool,
    TimeBin,
    jitter_sigma_from,
    simulate_serving,
)

__all__ = [
    "ApproxStats",
    "ArrivalRate",
    "HostModel",
    "PoolLoad",
    "PoolResult",
    "PoolStats",
    "QUEUE_BATCHES_PER_REPLICA",
    "QueueingError",
    "ServiceCurve",
    "ServingResult",
    "SimPool",
    "TimeBin",
    "approximate_p99_ms",
    "approximate_pool",
    "as_curve",
    "capacity_rps",
    "check_pool",
    "jitter_sigma_from",
    "load_ratio",
    "mean_batch_size",
    "predict_completion_s",
    "waits_for_delay",
    "queue_bound_samples",
    "simulate_pool",
    "simulate_serving",
]
