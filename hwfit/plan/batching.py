"""The choice of a pool's max batch size and max queue delay at a rate: every option scored by the
queueing approximation, the promising ones confirmed by simulation."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwfit.simulate import (
    PoolStats,
    QueueingError,
    ServiceCurve,
    approximate_p99_ms,
    as_curve,
    capacity_rps,
    simulate_pool,
)

PRUNE_MARGIN = 1.4

PREFERENCES = ("latency", "capacity", "smallest")


@dataclass(frozen=True)
class BatchingChoice:
    """The chosen (max batch, max queue delay) of one pool at one rate, and its evidence."""

    max_batch: int
    max_queue_delay_ms: float
    p99_ms: float  # simulated
    approx_p99_ms: float  # estimated, what ranked it
    capacity_rps: float  # c·B/s(B)
    stats: PoolStats
    considered: int  # configurations scored by the approximation
    simulated: int  # configurations simulated to confirm

    def __bool__(self) -> bool:
        return True


@dataclass(frozen=True)
class NoBatchingFit:
    """No option meets the target; falsy, so `if not choice:` reads like a None check.

    `best_p99_ms` is the lowest p99 seen (simulated where it was, estimated otherwise) and
    `best` names the option that gave it, so a caller can say how near the target is reachable.
    """

    reason: str
    best_p99_ms: float
    best: tuple[int, float] | None  # (max_batch, max_queue_delay_ms)
    considered: int
    simulated: int

    def __bool__(self) -> bool:
        return False


def choose_batching(
    curve: ServiceCurve | dict[int, float],
    replicas: int,
    rate_rps: float,
    p99_target_ms: float,
    max_batch_options: list[int] | tuple[int, ...] = (1, 2, 4, 8, 16, 32),
    queue_delay_options_ms: list[float] | tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0),
    prefer: str = "latency",
    max_simulations: int = 8,
    seed: int = 0,
) -> BatchingChoice | NoBatchingFit:
    """Pick the (max batch B, max queue delay d) for `replicas` replicas serving `rate_rps`
    with p99 ≤ `p99_target_ms`.

    `prefer="latency"` takes the lowest p99 (ties: the larger capacity); `prefer="capacity"`
    takes the largest c·B/s(B) that meets the target (ties: lower p99), which leaves the most
    room for bursts; `prefer="smallest"` takes the smallest B, then the smallest d, that meets
    the target: it bounds the worst service time and the memory, keeps to batch sizes that were
    measured rather than extrapolated, and grows the batch only as the rate demands it.
    With d = 0 a larger B costs almost no latency in this model (a batch is only as big as the
    queue), so "latency" and "capacity" both tend to the largest B offered. Every option is scored
    by the approximation; the ones that can still meet the target are simulated until one meets
    it, at most `max_simulations`: first those whose estimate meets it, in the order preferred,
    then those within PRUNE_MARGIN, nearest first.
    """
    if prefer not in PREFERENCES:
        raise QueueingError(f"prefer must be one of {', '.join(PREFERENCES)}, got {prefer!r}")
    if not p99_target_ms > 0:
        raise QueueingError(f"p99_target_ms must be > 0, got {p99_target_ms!r}")
    curve = as_curve(curve)
    scored = _score_options(curve, replicas, rate_rps, max_batch_options, queue_delay_options_ms)
    considered = len(scored)
    stable = [row for row in scored if math.isfinite(row[0])]
    if not stable:
        best_capacity = max(capacity_rps(curve, replicas, b) for b in max_batch_options)
        return NoBatchingFit(
            reason=f"{rate_rps:g} req/s overloads {replicas} replica(s) at every max batch size "
            f"(the most they serve is {best_capacity:.4g} req/s)",
            best_p99_ms=math.inf,
            best=None,
            considered=considered,
            simulated=0,
        )
    if prefer == "latency":
        stable.sort(key=lambda row: (row[0], -row[3]))
    elif prefer == "capacity":
        stable.sort(key=lambda row: (-row[3], row[0]))
    else:  # smallest
        stable.sort(key=lambda row: (row[1], row[2], row[0]))
    lowest = min(stable)
    best_seen = (lowest[0], (lowest[1], lowest[2]))  # estimated, until something is simulated
    # those the estimate says fit, in the order preferred; then the borderline ones, nearest first
    likely = [row for row in stable if row[0] <= p99_target_ms]
    borderline = sorted(row for row in stable if p99_target_ms < row[0] <= p99_target_ms * PRUNE_MARGIN)
    simulated = 0
    for approx_ms, max_batch, delay_ms, capacity in likely + borderline:
        if simulated >= max_simulations:
            break
        stats = simulate_pool(curve, replicas, max_batch, delay_ms, rate_rps, seed=seed)
        simulated += 1
        if simulated == 1 or stats.p99_ms < best_seen[0]:
            best_seen = (stats.p99_ms, (max_batch, delay_ms))
        if stats.p99_ms <= p99_target_ms:
            return BatchingChoice(
                max_batch=max_batch,
                max_queue_delay_ms=delay_ms,
                p99_ms=stats.p99_ms,
                approx_p99_ms=approx_ms,
                capacity_rps=capacity,
                stats=stats,
                considered=considered,
                simulated=simulated,
            )
    best_ms, best_option = best_seen
    how = "simulated" if simulated else "estimated"
    return NoBatchingFit(
        reason=f"p99 <= {p99_target_ms:g} ms is not reachable at {rate_rps:g} req/s on {replicas} replica(s); "
        f"the best is {best_ms:.3g} ms ({how}) with max batch {best_option[0]}, "
        f"max queue delay {best_option[1]:g} ms",
        best_p99_ms=best_ms,
        best=best_option,
        considered=considered,
        simulated=simulated,
    )


def _score_options(
    curve: ServiceCurve,
    replicas: int,
    rate_rps: float,
    max_batch_options: list[int] | tuple[int, ...],
    queue_delay_options_ms: list[float] | tuple[float, ...],
) -> list[tuple[float, int, float, float]]:
    """(approximate p99 ms, B, d, capacity rps) for every option; inf p99 when overloaded."""
    rows = []
    for max_batch in max_batch_options:
        capacity = capacity_rps(curve, replicas, max_batch)
        # with B = 1 there is nothing to wait for, so one delay stands for all
        delays = (0.0,) if max_batch == 1 else queue_delay_options_ms
        for delay_ms in delays:
            approx_ms = approximate_p99_ms(curve, replicas, max_batch, float(delay_ms), rate_rps)
            rows.append((approx_ms, max_batch, float(delay_ms), capacity))
    return rows
