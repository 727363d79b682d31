"""Discrete-event simulation of one pool under dynamic batching: Poisson arrivals, a batcher with
a max batch size and max queue delay, replicas serving the measured curve with its jitter."""

from __future__ import annotations

import bisect
import heapq
import math
from dataclasses import dataclass

import numpy as np

from hwfit.simulate.curve import ServiceCurve, as_curve, check_pool, load_ratio
from hwfit.simulate.prediction import waits_for_delay


@dataclass(frozen=True)
class PoolStats:
    """What one pool does at one rate: latency from arrival to answer, batching, load."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    mean_batch_size: float
    utilization: float  # busy share of the replicas over the measured window
    throughput_rps: float  # answered requests per second over the measured window
    load_ratio: float  # λ / (c·B/s(B)); >= 1 means the queue grows without bound
    stable: bool
    requests: int  # requests counted in the percentiles (after the warm-up)
    how: str = "simulated"


def simulate_pool(
    curve: ServiceCurve | dict[int, float],
    replicas: int,
    max_batch: int,
    max_queue_delay_ms: float,
    rate_rps: float,
    duration_s: float | None = None,
    seed: int = 0,
    warmup_share: float = 0.1,
) -> PoolStats:
    """Simulate a Triton-style dynamic batcher in front of `replicas` identical replicas.

    Poisson arrivals at `rate_rps`. One batcher forms batches in arrival order (FIFO): when a
    replica is free and requests are queued, it takes up to `max_batch` of them; if fewer are
    queued it waits until `max_batch` have arrived or the oldest has waited `max_queue_delay_ms`,
    whichever is first — unless the request is alone in the pool and no other is expected within
    the delay (`waits_for_delay`, as the server's batcher): then it goes at once. A batch of b takes
    s(b) ms, deterministic. Latency is answer time minus arrival time (queue + batch formation +
    service). By default it simulates 200,000 requests; the first `warmup_share` of them are left
    out of the statistics (the pool starts empty).
    """
    curve = as_curve(curve)
    check_pool(replicas, max_batch, max_queue_delay_ms, rate_rps)
    if duration_s is None:
        duration_s = 200_000 / rate_rps
    rng = np.random.default_rng(seed)
    rate_per_ms = rate_rps / 1000.0
    count = max(int(rate_per_ms * duration_s * 1000.0), 10)
    arrivals_ms = np.cumsum(rng.exponential(1.0 / rate_per_ms, size=count))
    batch_starts, batch_sizes, dispatch_ms = _run_batcher(
        arrivals_ms.tolist(), curve.table_ms(max_batch), replicas, max_batch, float(max_queue_delay_ms), rate_per_ms
    )
    return _pool_stats(
        curve, arrivals_ms, batch_starts, batch_sizes, dispatch_ms, replicas, max_batch, rate_rps, warmup_share
    )


def _run_batcher(
    arrivals_ms: list[float],
    service_table_ms: list[float],
    replicas: int,
    max_batch: int,
    delay_ms: float,
    rate_per_ms: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The event loop, one iteration per batch; plain Python lists and bisect, which beat numpy
    calls on scalars. Returns, per batch: index of its first request, its size, dispatch time."""
    count = len(arrivals_ms)
    free_at_ms = [0.0] * replicas  # a heap: when each replica is next free
    head = 0  # first request not yet in a batch
    last_dispatch_ms = 0.0
    starts: list[int] = []
    sizes: list[int] = []
    dispatches: list[float] = []
    while head < count:
        replica_free_ms = heapq.heappop(free_at_ms)
        oldest_ms = arrivals_ms[head]
        # batches leave in order: a batch is not sent before the one formed ahead of it
        ready_ms = max(replica_free_ms, oldest_ms, last_dispatch_ms)
        full_index = head + max_batch - 1
        full_at_ms = arrivals_ms[full_index] if full_index < count else math.inf
        # the batch leaves when the replica is free and either it is full or the oldest timed out;
        # alone in an idle pool, with no other request expected within the delay, at once
        waits = waits_for_delay(
            rate_per_ms,
            oldest_ms + delay_ms - ready_ms,
            any(free_ms > ready_ms for free_ms in free_at_ms)
            or (head + 1 < count and arrivals_ms[head + 1] <= ready_ms),
        )
        dispatch_ms = max(ready_ms, min(full_at_ms, oldest_ms + delay_ms)) if waits else ready_ms
        arrived = bisect.bisect_right(arrivals_ms, dispatch_ms, head, min(count, head + max_batch))
        size = max(arrived - head, 1)
        starts.append(head)
        sizes.append(size)
        dispatches.append(dispatch_ms)
        heapq.heappush(free_at_ms, dispatch_ms + service_table_ms[size])
        last_dispatch_ms = dispatch_ms
        head += size
    return np.array(starts), np.array(sizes), np.array(dispatches)


def _pool_stats(
    curve: ServiceCurve,
    arrivals_ms: np.ndarray,
    batch_starts: np.ndarray,
    batch_sizes: np.ndarray,
    dispatch_ms: np.ndarray,
    replicas: int,
    max_batch: int,
    rate_rps: float,
    warmup_share: float,
) -> PoolStats:
    service_ms = np.array(curve.table_ms(max_batch))[batch_sizes]
    done_ms = dispatch_ms + service_ms
    latency_ms = np.repeat(done_ms, batch_sizes) - arrivals_ms
    first = int(len(arrivals_ms) * warmup_share)
    kept = latency_ms[first:]
    # the measured window: from the first kept arrival to the last answer
    window_ms = max(done_ms[-1] - arrivals_ms[first], 1e-9)
    kept_batches = batch_starts >= first
    busy_ms = float(service_ms[kept_batches].sum())
    p50, p90, p99 = np.percentile(kept, [50, 90, 99])
    ratio = load_ratio(curve, replicas, max_batch, rate_rps)
    return PoolStats(
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        mean_ms=float(kept.mean()),
        mean_batch_size=float(batch_sizes[kept_batches].mean()),
        utilization=float(min(busy_ms / (replicas * window_ms), 1.0)),
        throughput_rps=float(len(kept) * 1000.0 / window_ms),
        load_ratio=ratio,
        stable=ratio < 1.0,
        requests=len(kept),
    )


# --- analytical approximation -------------------------------------------------------------
