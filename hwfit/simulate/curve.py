"""A pool's service-time curve s(b) and what follows from it alone: capacity and load."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from hwfit.core import HwfitError


class QueueingError(HwfitError):
    """A service-time curve or a pool configuration cannot be modelled (the message says why)."""


@dataclass(frozen=True)
class ServiceCurve:
    """Service time s(b) in ms of one batch of b requests on one replica.

    Built from measured points (batch size -> p50 ms). Between points it is linear; beyond the
    last point it follows the line through the last two (batch cost keeps growing at the last
    measured slope); below the first it follows the first two (or stays flat with one point).
    """

    batch_sizes: tuple[int, ...]
    service_ms: tuple[float, ...]

    @classmethod
    def from_points(cls, points: dict[int, float]) -> ServiceCurve:
        if not points:
            raise QueueingError("a service-time curve needs at least one (batch size -> ms) point")
        for batch, ms in points.items():
            if int(batch) != batch or batch < 1:
                raise QueueingError(f"service-time curve: batch size {batch!r} is not an integer >= 1")
            if not (ms > 0 and math.isfinite(ms)):
                raise QueueingError(f"service-time curve: time {ms!r} ms at batch {batch} is not a number > 0")
        ordered = sorted((int(b), float(ms)) for b, ms in points.items())
        return cls(tuple(b for b, _ in ordered), tuple(ms for _, ms in ordered))

    def __call__(self, batch_size: float) -> float:
        xs, ys = self.batch_sizes, self.service_ms
        if len(xs) == 1:
            return ys[0]
        if batch_size <= xs[0]:
            i = 0
        elif batch_size >= xs[-1]:
            i = len(xs) - 2
        else:
            i = bisect.bisect_right(xs, batch_size) - 1
        slope = (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i])
        # never below a small positive time: a falling extrapolation must not give s <= 0
        return max(ys[i] + slope * (batch_size - xs[i]), 1e-6)

    def table_ms(self, max_batch: int) -> list[float]:
        """s(b) for b = 0..max_batch (index 0 unused), so the simulation looks times up."""
        return [0.0] + [self(b) for b in range(1, max_batch + 1)]


def as_curve(curve: ServiceCurve | dict[int, float]) -> ServiceCurve:
    return curve if isinstance(curve, ServiceCurve) else ServiceCurve.from_points(curve)


def capacity_rps(curve: ServiceCurve | dict[int, float], replicas: int, max_batch: int) -> float:
    """Highest sustainable rate: under overload every batch is full, so c·B / s(B)."""
    curve = as_curve(curve)
    return replicas * max_batch * 1000.0 / curve(max_batch)


def load_ratio(curve: ServiceCurve | dict[int, float], replicas: int, max_batch: int, rate_rps: float) -> float:
    """ρ = λ / capacity; the pool is stable iff ρ < 1."""
    return rate_rps / capacity_rps(curve, replicas, max_batch)


QUEUE_BATCHES_PER_REPLICA = 8  # serve's queue bound: at least this many full batches per replica


def queue_bound_samples(
    curve: ServiceCurve | dict[int, float],
    replicas: int,
    max_batch: int,
    deadline_s: float | None,
    batches_per_replica: int = QUEUE_BATCHES_PER_REPLICA,
) -> int:
    """A pool's queue bound in samples, as `hwfit serve` sets it: `batches_per_replica` full batches
    per replica, or what the pool serves at capacity within the default deadline if that is more (a
    pool with a long deadline and max batch 1 must not refuse a queue it could serve in time)."""
    batches = replicas * max_batch * batches_per_replica
    if deadline_s is None:
        return batches
    return max(batches, math.ceil(capacity_rps(curve, replicas, max_batch) * deadline_s))


def check_pool(replicas: int, max_batch: int, max_queue_delay_ms: float, rate_rps: float) -> None:
    """Raise QueueingError when a pool's configuration or rate cannot be modelled."""
    if int(replicas) != replicas or replicas < 1:
        raise QueueingError(f"replicas must be an integer >= 1, got {replicas!r}")
    if int(max_batch) != max_batch or max_batch < 1:
        raise QueueingError(f"max_batch must be an integer >= 1, got {max_batch!r}")
    if not max_queue_delay_ms >= 0:
        raise QueueingError(f"max_queue_delay_ms must be >= 0, got {max_queue_delay_ms!r}")
    if not rate_rps > 0:
        raise QueueingError(f"rate_rps must be > 0, got {rate_rps!r}")
