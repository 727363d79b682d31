"""Discrete-event simulation of a whole server as `hwfit serve` runs it: every pool's dynamic batcher
and replicas, the router that sends each request to the pool predicted to answer it first (the
server's own `predict_completion_s`, with its learned service-time correction and lateness
allowance), queue bounds, the default deadline and the refusals it causes, the fallback chain while
pools are down (outages), and the degraded tier. Service times are the measured curve with its
jitter; the host's own work (front end, load generator) can be charged to the cores the replicas
use. Pure function of the pools and the arrival times; imports only `hwfit.core`.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from hwfit.simulate.curve import QueueingError, ServiceCurve, as_curve, capacity_rps, queue_bound_samples
from hwfit.simulate.prediction import ArrivalRate, PoolLoad, predict_completion_s, waits_for_delay

ROUTED_ROLES = ("primary", "overflow")
EWMA_ALPHA = 0.2  # the server's online correction of the service curve (serve/scheduler/router.py)
LATENESS_WINDOW = 256  # the server's lateness allowance: p95 of the last answers' (answered - predicted)
LATENESS_QUANTILE = 0.95
LATENESS_REFRESH = 32
Jitter = Literal["lognormal", "exponential", "none"]


@dataclass(frozen=True)
class SimPool:
    """One pool as the simulator runs it (what a plan's pool says, plus its measured jitter)."""

    name: str
    curve: ServiceCurve
    replicas: int
    max_batch: int
    max_queue_delay_ms: float
    role: str = "primary"  # primary | overflow | fallback
    degraded: bool = False
    queue_limit_samples: int | None = None  # None: the server's rule (queue_bound_samples)
    jitter: Jitter = "lognormal"
    jitter_sigma: float = 0.0  # lognormal: sigma of ln(service / curve); from measured p99/p50
    j_per_inference: float | None = None
    cost_per_hour: float | None = None
    outages: tuple[tuple[float, float], ...] = ()  # (start_s, end_s): the pool is down in between
    cores_per_replica: float = 0.0  # CPU cores one busy replica keeps busy (its threads; 0 for a GPU's)

    def __post_init__(self) -> None:
        if self.role not in ("primary", "overflow", "fallback"):
            raise QueueingError(f"pool {self.name!r}: role {self.role!r} is not primary, overflow or fallback")
        if self.replicas < 1 or self.max_batch < 1 or self.max_queue_delay_ms < 0:
            raise QueueingError(
                f"pool {self.name!r}: replicas and max_batch must be >= 1 and max_queue_delay_ms >= 0, got "
                f"{self.replicas}, {self.max_batch}, {self.max_queue_delay_ms}"
            )
        if self.jitter_sigma < 0:
            raise QueueingError(f"pool {self.name!r}: jitter_sigma must be >= 0, got {self.jitter_sigma}")

    @classmethod
    def from_points(cls, name: str, service_ms: dict[int, float], **kwargs) -> SimPool:
        return cls(name, as_curve(service_ms), **kwargs)

    @property
    def capacity_rps(self) -> float:
        return capacity_rps(self.curve, self.replicas, self.max_batch)


def jitter_sigma_from(p50_ms: float, p99_ms: float) -> float:
    """The lognormal sigma whose p99/p50 is the measured one: p99/p50 = exp(2.326 sigma)."""
    if not (p50_ms > 0 and p99_ms >= p50_ms):
        return 0.0
    return math.log(p99_ms / p50_ms) / 2.3263


@dataclass(frozen=True)
class HostModel:
    """What the server and its environment add to what the pools do.

    overhead_ms: per request, outside the pools (HTTP parse, decode, dispatch, encode, the network),
      added to every answered request's latency; measure it as the server's p50 at one request at a
      time minus the pool's s(1).
    deadline_ms: the server's default deadline (its plan's SLO p99): a request predicted to miss it
      on every pool is refused at once. None: no deadline (nothing refused for time).
    host_cpu_ms_per_request / cores: CPU the front end and a load generator on the same machine
      spend per request, and the machine's cores. The cores are shared as a processor-sharing
      system: host work (rate × CPU per request) and the busy replicas' cores (`cores_per_replica`
      each) run at full speed while they fit in `cores`; beyond that every batch stretches by
      (busy replica cores + host cores) / cores.
    degraded_share: share of requests that allow the degraded tier.
    service_stretch: how much longer a batch takes inside the server than the measured curve says
      (wake-ups of idle worker threads, the trip to the worker and back, a core shared with other
      work): measure it as the server's mean batch time (its /metrics compute time) over the curve's
      at a known load. The router still predicts from the curve and learns the difference online, as
      `hwfit serve`'s does.
    """

    overhead_ms: float = 0.0
    deadline_ms: float | None = None
    host_cpu_ms_per_request: float = 0.0
    cores: float | None = None
    degraded_share: float = 0.0
    service_stretch: float = 1.0

    def contention(self, rate_rps: float, busy_cores: float) -> float:
        """How much longer a batch takes than alone: processor sharing of `cores` between the busy
        replicas' cores (this batch's included) and the host's work at the current rate."""
        if not self.cores:
            return self.service_stretch
        host_cores = rate_rps * self.host_cpu_ms_per_request / 1000.0
        return self.service_stretch * max(1.0, (busy_cores + host_cores) / self.cores)


@dataclass(frozen=True)
class PoolResult:
    name: str
    role: str
    answered: int
    p50_ms: float | None
    p99_ms: float | None
    mean_batch_size: float | None
    mean_service_ms: float | None  # a request's batch time, averaged over requests (as /metrics' compute time)
    utilization: float  # busy replica-time / (replicas × window)
    mean_queue_samples: float
    max_queue_samples: int
    energy_j: float | None
    cost_usd: float | None


@dataclass(frozen=True)
class TimeBin:
    start_s: float
    offered: int
    answered: int
    refused: int
    p50_ms: float | None
    p99_ms: float | None
    queue_samples: float  # mean seen by arrivals
    utilization: float  # of all replicas


@dataclass(frozen=True)
class ServingResult:
    """What the simulated server did with the traffic (requests arriving after the warm-up)."""

    offered: int
    answered: int
    refused: int
    refused_reasons: dict[str, int]
    window_s: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    p999_ms: float | None
    max_ms: float | None
    pools: list[PoolResult]
    timeline: list[TimeBin]
    energy_j: float | None
    cost_usd: float | None
    latencies_ms: np.ndarray = field(repr=False)  # answered requests after the warm-up, arrival order
    how: str = "simulated"

    @property
    def offered_rps(self) -> float:
        return self.offered / self.window_s

    @property
    def answered_rps(self) -> float:
        return self.answered / self.window_s

    @property
    def refused_share(self) -> float:
        return self.refused / self.offered if self.offered else 0.0

    @property
    def cost_per_million(self) -> float | None:
        if self.cost_usd is None or not self.answered:
            return None
        return self.cost_usd / self.answered * 1e6

    @property
    def j_per_inference(self) -> float | None:
        return None if self.energy_j is None or not self.answered else self.energy_j / self.answered

    def to_dict(self) -> dict:
        return {
            "offered": self.offered,
            "answered": self.answered,
            "refused": self.refused,
            "refused_reasons": self.refused_reasons,
            "window_s": self.window_s,
            "offered_rps": self.offered_rps,
            "answered_rps": self.answered_rps,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "p999_ms": self.p999_ms,
            "max_ms": self.max_ms,
            "energy_j": self.energy_j,
            "j_per_inference": self.j_per_inference,
            "cost_usd": self.cost_usd,
            "cost_per_million": self.cost_per_million,
            "pools": [vars(pool) for pool in self.pools],
            "timeline": [vars(b) for b in self.timeline],
            "how": self.how,
        }


# --- the simulation --------------------------------------------------------------------------


@dataclass(eq=False)
class _Job:
    arrived: float
    deadline: float | None
    degraded_ok: bool
    counted: bool  # after the warm-up
    predicted: float = 0.0  # router's predicted answer time, without the lateness allowance
    admitted: float = 0.0


class _PoolState:
    """One pool during the run: its queue, replicas and what it has learned (as the server's Pool)."""

    def __init__(self, spec: SimPool, deadline_s: float | None, rng: np.random.Generator):
        self.spec = spec
        self.name = spec.name
        self.queue: deque[_Job] = deque()
        limit = spec.queue_limit_samples
        self.limit = (
            limit if limit is not None else queue_bound_samples(spec.curve, spec.replicas, spec.max_batch, deadline_s)
        )
        self.free = list(range(spec.replicas))
        self.busy_until_predicted: dict[int, float] = {}
        self.delay_s = spec.max_queue_delay_ms / 1000.0
        self.timer_at: float | None = None
        self.arrivals = ArrivalRate()
        self.ratio_by_batch: dict[int, float] = {}
        self.ratio_overall: float | None = None
        self.late = deque(maxlen=LATENESS_WINDOW)
        self.late_value = 0.0
        self.late_added = 0
        self.rng = rng
        self.batch_log: list[tuple[float, float]] = []  # (start, end) of every batch
        self.batch_spans = np.zeros((0, 2))
        self.request_service_s = 0.0  # sum over requests of their batch's time
        self.batches = 0
        self.batch_samples = 0
        self.latencies: list[float] = []
        self.answered = 0

    def is_up(self, now: float) -> bool:
        return not any(start <= now < end for start, end in self.spec.outages)

    def predict_s(self, batch: int) -> float:
        ratio = self.ratio_by_batch.get(batch, self.ratio_overall if self.ratio_overall is not None else 1.0)
        return self.spec.curve(batch) * ratio / 1000.0

    def load(self, now: float) -> PoolLoad:
        busy = tuple(max(0.0, until - now) for until in self.busy_until_predicted.values())
        return PoolLoad(
            self.spec.replicas,
            busy,
            None,
            len(self.queue),
            self.spec.max_batch,
            self.delay_s,
            self.arrivals.rate(now),
        )

    def service_s(self, batch: int, contention: float) -> float:
        base = self.spec.curve(batch) / 1000.0 * contention
        if self.spec.jitter == "exponential":
            return float(self.rng.exponential(base))
        if self.spec.jitter == "lognormal" and self.spec.jitter_sigma > 0:
            return base * float(np.exp(self.rng.normal(0.0, self.spec.jitter_sigma)))
        return base

    def observe(self, batch: int, observed_s: float) -> None:
        ratio = observed_s * 1000.0 / self.spec.curve(batch)
        previous = self.ratio_by_batch.get(batch)
        self.ratio_by_batch[batch] = ratio if previous is None else (1 - EWMA_ALPHA) * previous + EWMA_ALPHA * ratio
        overall = self.ratio_overall
        self.ratio_overall = ratio if overall is None else (1 - EWMA_ALPHA) * overall + EWMA_ALPHA * ratio

    def add_lateness(self, late_s: float) -> None:
        self.late.append(late_s)
        self.late_added += 1
        if self.late_added % LATENESS_REFRESH == 0 or len(self.late) < LATENESS_WINDOW:
            self.late_value = max(0.0, float(np.quantile(self.late, LATENESS_QUANTILE)))


_ARRIVAL, _DONE, _DUE, _DOWN = 0, 1, 2, 3


def simulate_serving(
    pools: list[SimPool],
    arrivals_s: np.ndarray,
    host: HostModel = HostModel(),
    fallback: tuple[str, ...] = (),
    warmup_s: float = 0.0,
    bin_s: float | None = None,
    seed: int = 0,
) -> ServingResult:
    """Run the server on these arrival times (seconds, sorted); every accepted request is answered
    (the run goes on after the last arrival until the queues are empty)."""
    if not pools:
        raise QueueingError("a simulation needs at least one pool")
    names = [pool.name for pool in pools]
    if len(set(names)) != len(names):
        raise QueueingError(f"pool names must be unique, got {names}")
    arrivals_s = np.asarray(arrivals_s, dtype=float)
    if len(arrivals_s) == 0:
        raise QueueingError("the traffic has no arrivals in the window: a longer duration or a higher rate")
    rng = np.random.default_rng(seed)
    deadline_s = None if host.deadline_ms is None else host.deadline_ms / 1000.0
    states = [_PoolState(pool, deadline_s, np.random.default_rng(rng.integers(2**63))) for pool in pools]
    by_name = {state.name: state for state in states}
    chain = [by_name[name] for name in fallback if name in by_name]
    degraded_draws = rng.random(len(arrivals_s)) < host.degraded_share
    server_rate = ArrivalRate()

    events: list[tuple[float, int, int, object]] = []
    seq = 0

    def push(time_s: float, kind: int, payload: object) -> None:
        nonlocal seq
        heapq.heappush(events, (time_s, seq, kind, payload))
        seq += 1

    for state in states:
        for start, _end in state.spec.outages:
            push(start, _DOWN, state)
    next_arrival = 0
    refused: dict[str, int] = {}
    refused_at: list[float] = []
    queue_seen: list[tuple[float, int]] = []
    answers: list[tuple[float, float]] = []  # (arrival, latency ms) of counted requests

    def dispatch(state: _PoolState, now: float) -> None:
        while state.free and state.queue:
            oldest = state.queue[0]
            due = oldest.admitted + state.delay_s
            others = len(state.queue) > 1 or bool(state.busy_until_predicted)
            if (
                len(state.queue) < state.spec.max_batch
                and due > now
                and waits_for_delay(state.arrivals.rate(now), due - now, others)
            ):
                if state.timer_at is None or state.timer_at > due or state.timer_at < now:
                    state.timer_at = due
                    push(due, _DUE, state)
                return
            size = min(len(state.queue), state.spec.max_batch)
            jobs = [state.queue.popleft() for _ in range(size)]
            replica = state.free.pop()
            busy_cores = sum(len(s.busy_until_predicted) * s.spec.cores_per_replica for s in states)
            busy_cores += state.spec.cores_per_replica
            took_s = state.service_s(size, host.contention(server_rate.rate(now), busy_cores))
            state.busy_until_predicted[replica] = now + state.predict_s(size)
            state.batch_log.append((now, now + took_s))
            state.request_service_s += size * took_s
            state.batches += 1
            state.batch_samples += size
            push(now + took_s, _DONE, (state, replica, jobs, size, took_s))

    def route(job: _Job, now: float) -> _PoolState | str:
        up = [s for s in states if s.is_up(now)]
        routed = [s for s in up if s.spec.role in ROUTED_ROLES and not s.spec.degraded]
        full = [s for s in routed if len(s.queue) + 1 > s.limit]
        routed = [s for s in routed if s not in full]
        if full and not routed:
            return "queue full"
        if routed:
            chosen = _earliest(routed, job, now)
        else:
            ordered = chain + [s for s in states if s not in chain]
            candidates = [s for s in ordered if s in up and not s.spec.degraded and len(s.queue) + 1 <= s.limit]
            chosen = _first_in_time(candidates, job, now)
            if not candidates and not any(s.spec.degraded for s in up):
                return "no pool up"
        if chosen is None and job.degraded_ok:
            degraded = [s for s in up if s.spec.degraded and len(s.queue) + 1 <= s.limit]
            chosen = _earliest(degraded, job, now)
        return chosen if chosen is not None else "deadline"

    while next_arrival < len(arrivals_s) or events:
        if next_arrival < len(arrivals_s) and (not events or arrivals_s[next_arrival] <= events[0][0]):
            now = float(arrivals_s[next_arrival])
            counted = now >= warmup_s
            deadline = None if deadline_s is None else now + deadline_s
            job = _Job(now, deadline, bool(degraded_draws[next_arrival]), counted)
            next_arrival += 1
            server_rate.add(1, now)
            if counted:
                queue_seen.append((now, *(len(s.queue) for s in states)))
            outcome = route(job, now)
            if isinstance(outcome, str):
                if counted:
                    refused[outcome] = refused.get(outcome, 0) + 1
                    refused_at.append(now)
                continue
            outcome.queue.append(job)
            job.admitted = now
            outcome.arrivals.add(1, now)
            dispatch(outcome, now)
            continue
        now, _, kind, payload = heapq.heappop(events)
        if kind == _DONE:
            state, replica, jobs, size, took_s = payload
            state.free.append(replica)
            del state.busy_until_predicted[replica]
            state.observe(size, took_s)
            for job in jobs:
                state.add_lateness(now - job.predicted)
                state.answered += 1
                if job.counted:
                    latency_ms = (now - job.arrived) * 1000.0 + host.overhead_ms
                    state.latencies.append(latency_ms)
                    answers.append((job.arrived, latency_ms))
            dispatch(state, now)
        elif kind == _DUE:
            state = payload
            if state.timer_at == now:
                state.timer_at = None
            dispatch(state, now)
        elif kind == _DOWN:
            _evacuate(payload, now, route, refused, refused_at, dispatch)

    return _result(states, arrivals_s, warmup_s, answers, refused, refused_at, queue_seen, bin_s)


def _completion(state: _PoolState, now: float) -> tuple[float, float]:
    predicted = now + predict_completion_s(state.load(now), 1, state.predict_s)
    return predicted + state.late_value, predicted


def _earliest(states: list[_PoolState], job: _Job, now: float) -> _PoolState | None:
    best, best_at = None, math.inf
    for state in states:
        completion, predicted = _completion(state, now)
        if (job.deadline is None or completion <= job.deadline) and completion < best_at:
            best, best_at, job.predicted = state, completion, predicted
    return best


def _first_in_time(states: list[_PoolState], job: _Job, now: float) -> _PoolState | None:
    for state in states:
        completion, predicted = _completion(state, now)
        if job.deadline is None or completion <= job.deadline:
            job.predicted = predicted
            return state
    return None


def _evacuate(state: _PoolState, now: float, route, refused, refused_at, dispatch) -> None:
    """A pool goes down: its queued requests are routed again (the server hands them back)."""
    jobs = list(state.queue)
    state.queue.clear()
    for job in jobs:
        job.deadline = None  # an accepted request is placed regardless of the default deadline
        outcome = route(job, now)
        if isinstance(outcome, str):
            if job.counted:
                refused["pool down"] = refused.get("pool down", 0) + 1
                refused_at.append(now)
            continue
        outcome.queue.append(job)
        job.admitted = now
        dispatch(outcome, now)


def _percentiles(values: np.ndarray, qs: list[float]) -> list[float | None]:
    if len(values) == 0:
        return [None] * len(qs)
    return [float(v) for v in np.percentile(values, qs)]


def _busy_between(spans: np.ndarray, start: float, end: float) -> float:
    """Replica-seconds of batches (rows of start, end) inside [start, end)."""
    return float(np.clip(np.minimum(spans[:, 1], end) - np.maximum(spans[:, 0], start), 0.0, None).sum())


def _result(states, arrivals_s, warmup_s, answers, refused, refused_at, queue_seen, bin_s) -> ServingResult:
    counted_arrivals = arrivals_s[arrivals_s >= warmup_s]
    start = float(counted_arrivals[0]) if len(counted_arrivals) else warmup_s
    end = float(arrivals_s[-1])
    window_s = max(end - start, 1e-9)
    answers.sort()
    arrived = np.array([a for a, _ in answers])
    latencies = np.array([lat for _, lat in answers])
    p50, p90, p99, p999 = _percentiles(latencies, [50, 90, 99, 99.9])
    seen = np.asarray(queue_seen, dtype=float).reshape(-1, len(states) + 1)
    for state in states:
        state.batch_spans = np.asarray(state.batch_log, dtype=float).reshape(-1, 2)
    # sums over the pools that have a figure (None when none has): a standby pool with no price adds nothing
    energy = 0.0 if any(s.spec.j_per_inference is not None for s in states) else None
    cost = 0.0 if any(s.spec.cost_per_hour is not None for s in states) else None
    pools = []
    for column, state in enumerate(states, 1):
        lat = np.array(state.latencies)
        pp50, pp99 = _percentiles(lat, [50, 99])
        pool_energy = None if state.spec.j_per_inference is None else state.spec.j_per_inference * len(lat)
        pool_cost = None if state.spec.cost_per_hour is None else state.spec.cost_per_hour * window_s / 3600.0
        if pool_energy is not None:
            energy += pool_energy
        if pool_cost is not None:
            cost += pool_cost
        queued = seen[:, column]
        pools.append(
            PoolResult(
                name=state.name,
                role=state.spec.role,
                answered=len(lat),
                p50_ms=pp50,
                p99_ms=pp99,
                mean_batch_size=state.batch_samples / state.batches if state.batches else None,
                mean_service_ms=state.request_service_s * 1000.0 / state.batch_samples if state.batches else None,
                utilization=min(1.0, _busy_between(state.batch_spans, start, end) / (state.spec.replicas * window_s)),
                mean_queue_samples=float(queued.mean()) if len(queued) else 0.0,
                max_queue_samples=int(queued.max()) if len(queued) else 0,
                energy_j=pool_energy,
                cost_usd=pool_cost,
            )
        )
    timeline = _timeline(states, counted_arrivals, arrived, latencies, np.asarray(refused_at), seen, start, end, bin_s)
    return ServingResult(
        offered=len(counted_arrivals),
        answered=len(latencies),
        refused=sum(refused.values()),
        refused_reasons=dict(refused),
        window_s=window_s,
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
        p999_ms=p999,
        max_ms=float(latencies.max()) if len(latencies) else None,
        pools=pools,
        timeline=timeline,
        energy_j=energy,
        cost_usd=cost,
        latencies_ms=latencies,
    )


def _timeline(states, arrivals, arrived, latencies, refused_at, seen, start, end, bin_s) -> list[TimeBin]:
    """Per bin of the window (60 bins unless `bin_s`), by arrival time: offered, answered, refused,
    latency percentiles, the queue arrivals found, and the replicas' busy share."""
    if bin_s is None:
        bin_s = max((end - start) / 60.0, 0.1)
    edges = np.arange(start, end + bin_s, bin_s)
    if len(edges) < 2:
        edges = np.array([start, start + bin_s])
    offered = np.histogram(arrivals, edges)[0]
    refused = np.histogram(refused_at, edges)[0] if len(refused_at) else np.zeros(len(edges) - 1, int)
    answer_bin = np.searchsorted(edges, arrived, side="right") - 1
    queue_bin = np.searchsorted(edges, seen[:, 0], side="right") - 1
    queued = seen[:, 1:].sum(axis=1)
    replicas = sum(s.spec.replicas for s in states)
    bins = []
    for i in range(len(edges) - 1):
        lat = latencies[answer_bin == i]
        q = queued[queue_bin == i]
        p50, p99 = _percentiles(lat, [50, 99])
        busy = sum(_busy_between(s.batch_spans, edges[i], edges[i + 1]) for s in states)
        bins.append(
            TimeBin(
                start_s=float(edges[i]),
                offered=int(offered[i]),
                answered=len(lat),
                refused=int(refused[i]),
                p50_ms=p50,
                p99_ms=p99,
                queue_samples=float(q.mean()) if len(q) else 0.0,
                utilization=min(1.0, busy / (replicas * bin_s)),
            )
        )
    return bins
