"""What the router predicts for a request on one pool: when it would be answered, given the pool's
replicas (busy and free), the samples queued ahead of it, the batcher's limits and the rate at which
samples are arriving. Shared by `hwfit serve`'s router and `hwfit simulate`'s model of it, so that
the simulation routes exactly as the server does. Pure functions of a service-time function.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PoolLoad:
    """A pool's state as the router needs it, at one instant."""

    ready_replicas: int  # loaded and in rotation (idle or busy)
    busy_remaining_s: tuple[float, ...]  # per busy replica: predicted time until it frees
    restart_delay_s: float | None  # when no replica is ready: predicted time until one is (None: never)
    samples_ahead: int  # queued samples that go before a new request of the given priority
    max_batch_size: int
    max_queue_delay_s: float
    arrival_rate_sps: float = 0.0  # samples/s the pool has been admitting: they join a batch still forming


def waits_for_delay(arrival_rate_sps: float, wait_left_s: float, others_in_pool: bool) -> bool:
    """Whether a batch that is not full, with a replica free to run it, waits out the `wait_left_s` left
    of its max queue delay (Triton's rule) — or goes now, because waiting cannot pay: no other request
    is queued or running in the pool and the pool's recent arrival rate expects no other sample before
    the delay ends (rate x time left < 1). Then the wait would only add the delay to the latency of a
    request served alone: with one client at a time no other request can come at all, and at a low rate
    one seldom does. Whenever the pool has other work, the whole delay is kept, so batches under load
    form exactly as before. The server's batcher, the router's prediction and the simulator use this."""
    if others_in_pool:
        return True
    return arrival_rate_sps * wait_left_s >= 1.0


def predict_completion_s(load: PoolLoad, samples: int, service_s: Callable[[int], float]) -> float:
    """Seconds from now until a request of `samples` would be answered by this pool (inf if never)."""
    free_at = list(load.busy_remaining_s) + [0.0] * max(0, load.ready_replicas - len(load.busy_remaining_s))
    if not free_at:
        if load.restart_delay_s is None:
            return float("inf")
        free_at = [load.restart_delay_s]
    heapq.heapify(free_at)
    batch_limit = load.max_batch_size
    full_batches, remainder = divmod(load.samples_ahead, batch_limit)
    if full_batches:
        free_at = _after_equal_batches(free_at, full_batches, service_s(batch_limit))
    if remainder + samples <= batch_limit:
        own_batch = remainder + samples
    else:  # the partial batch ahead goes first, alone
        heapq.heapreplace(free_at, free_at[0] + service_s(remainder))
        own_batch = samples
    start = heapq.heappop(free_at)
    own_batch = _filled(own_batch, load, start)
    others = bool(load.samples_ahead or load.busy_remaining_s)
    if own_batch < batch_limit and waits_for_delay(load.arrival_rate_sps, load.max_queue_delay_s - start, others):
        start = max(start, load.max_queue_delay_s)  # a batch that is not full waits for the delay
        own_batch = _filled(own_batch, load, start)
    return start + service_s(own_batch)


def _after_equal_batches(free_at: list[float], count: int, batch_s: float) -> list[float]:
    """The replicas' free times (a heap) after `count` batches of `batch_s` each go, each to the
    earliest free replica. Once the replicas free within one batch time of each other, every round
    of len(free_at) batches moves each replica on by `batch_s`: those rounds are added at once, so
    a long queue costs O(replicas), not O(queue)."""
    while count and max(free_at) - free_at[0] >= batch_s:
        heapq.heapreplace(free_at, free_at[0] + batch_s)
        count -= 1
    rounds, count = divmod(count, len(free_at))
    if rounds:
        free_at = [t + rounds * batch_s for t in free_at]  # a uniform shift keeps the heap a heap
    for _ in range(count):
        heapq.heapreplace(free_at, free_at[0] + batch_s)
    return free_at


def _filled(own_batch: int, load: PoolLoad, start_s: float) -> int:
    """The request's batch as dispatched: later arrivals join it until it starts, up to the limit."""
    joining = round(load.arrival_rate_sps * start_s)
    return min(load.max_batch_size, own_batch + joining)


class ArrivalRate:
    """Samples per second admitted, as an exponentially decaying average (time constant `tau_s`)."""

    def __init__(self, tau_s: float = 1.0):
        self.tau_s = tau_s
        self._rate = 0.0
        self._at: float | None = None

    def add(self, samples: int, now: float) -> None:
        self._rate = self.rate(now) + samples / self.tau_s
        self._at = now

    def rate(self, now: float) -> float:
        if self._at is None:
            return 0.0
        return self._rate * math.exp(-max(0.0, now - self._at) / self.tau_s)
