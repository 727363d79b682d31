"""The predicted-completion router: send each request to the pool predicted to answer it first, and
refuse at once, with the reason, a request no pool can answer within its deadline.

A pool's prediction = when one of its replicas frees up for the request's batch (the batches ahead
of it assigned to the earliest-free replicas) + batch formation + the service time of its batch.
Service times come from the plan's curve (`service_ms`), corrected online by an EWMA of observed /
predicted per batch size.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from hwfit.serve.api import Rejected, Unavailable, level_of
from hwfit.serve.scheduler.recent import RecentQuantile
from hwfit.simulate import PoolLoad, ServiceCurve, predict_completion_s

EWMA_ALPHA = 0.2  # weight of the newest observation: ~5 batches to follow a shift
# What a pool learned about itself fades when nothing new is learned: a pool that refused every
# request after a burst (its corrections inflated by the burst) would otherwise never answer one
# again to learn that it recovered. Corrections fade with this time constant once a pool goes quiet.
STALE_TAU_S = 2.0


def freshness(learned_at: float | None, tau_s: float) -> float:
    """Weight of what was learned at `learned_at`: 1 for `tau_s` after it, then exp(-(quiet - tau) / tau)."""
    if learned_at is None:
        return 1.0
    quiet_s = time.perf_counter() - learned_at
    return 1.0 if quiet_s <= tau_s else math.exp(-(quiet_s - tau_s) / tau_s)


ROUTED_ROLES = ("primary", "overflow")  # fallback pools take traffic only when these are all down
MIN_RETRY_AFTER_S = 0.05


class OnlineCurve:
    """Service time of a batch on one replica: the plan's curve times the observed/predicted ratio."""

    def __init__(self, service_ms: dict[int, float], alpha: float = EWMA_ALPHA, stale_tau_s: float = STALE_TAU_S):
        self.base = ServiceCurve.from_points({int(b): float(ms) for b, ms in service_ms.items()})
        self.alpha = alpha
        self.stale_tau_s = stale_tau_s
        self._ratio_by_batch: dict[int, float] = {}
        self._ratio_overall: float | None = None
        self._observed_at: float | None = None

    def ratio(self, batch_size: int) -> float:
        """The correction at this batch size (the pool-wide one where this size was never seen),
        fading back to the plan's curve once nothing has been observed for a while."""
        if batch_size in self._ratio_by_batch:
            learned = self._ratio_by_batch[batch_size]
        elif self._ratio_overall is not None:
            learned = self._ratio_overall
        else:
            return 1.0
        return 1.0 + (learned - 1.0) * self._freshness()

    def _freshness(self) -> float:
        return freshness(self._observed_at, self.stale_tau_s)

    def predict_s(self, batch_size: int) -> float:
        return self.base(batch_size) * self.ratio(batch_size) / 1000.0

    def observe(self, batch_size: int, observed_s: float) -> None:
        ratio = observed_s * 1000.0 / self.base(batch_size)
        freshness = self._freshness()
        if freshness < 1.0:  # what faded while the pool was quiet stays faded
            self._ratio_by_batch = {b: 1.0 + (r - 1.0) * freshness for b, r in self._ratio_by_batch.items()}
            if self._ratio_overall is not None:
                self._ratio_overall = 1.0 + (self._ratio_overall - 1.0) * freshness
        self._ratio_by_batch[batch_size] = self._ewma(self._ratio_by_batch.get(batch_size), ratio)
        self._ratio_overall = self._ewma(self._ratio_overall, ratio)
        self._observed_at = time.perf_counter()

    def _ewma(self, previous: float | None, value: float) -> float:
        return value if previous is None else (1 - self.alpha) * previous + self.alpha * value


class Lateness:
    """How much later than predicted a pool's answers come: the 95th percentile of (answered -
    predicted) over its recent answers, floored at 0. Added to predictions before they are held
    against a deadline, so the model's misses on this machine (scheduling noise, a loaded event
    loop) are learned rather than paid by the requests admitted at the edge."""

    def __init__(
        self, window: int = 256, quantile: float = 0.95, refresh_every: int = 32, stale_tau_s: float = STALE_TAU_S
    ):
        self.stale_tau_s = stale_tau_s
        self._late = RecentQuantile(window, quantile, refresh_every, refresh_while_filling=True)  # seconds late
        self._added_at: float | None = None

    def add(self, late_s: float) -> None:
        now = time.perf_counter()
        if self._added_at is not None and now - self._added_at > self.stale_tau_s:
            self._late.clear()  # after a quiet spell, what was learned before it no longer holds
        self._late.add(late_s)
        self._added_at = now

    def allowance_s(self) -> float:
        """The allowance, fading (as the service curve's correction does) once no answers come."""
        return max(0.0, self._late.value) * freshness(self._added_at, self.stale_tau_s)


class RoutablePool(Protocol):
    """What the router needs of a pool (see `hwfit.serve.scheduler.pools.Pool`)."""

    name: str
    role: str
    degraded: bool
    max_batch_size: int

    @property
    def up(self) -> bool: ...

    @property
    def down_reason(self) -> str | None: ...

    def load(self, priority: int) -> PoolLoad: ...

    def predict_s(self, batch_size: int) -> float: ...

    def has_room(self, samples: int, priority: int) -> bool: ...

    def lateness_s(self) -> float: ...

    def queue_text(self) -> str: ...


@dataclass(frozen=True)
class RouteRequest:
    samples: int
    priority: int
    tier: str  # full | degraded
    arrived: float  # perf_counter
    deadline: float | None  # perf_counter, or None
    unseen_s: float = 0.0  # taken off the deadline: the wait before `arrived` was stamped (event loop lag)


@dataclass(frozen=True)
class Route:
    pool: RoutablePool
    completion: float  # predicted perf_counter time of the answer, the pool's lateness allowance included
    predicted: float  # the model's own prediction, without it (what lateness is measured against)


class Router:
    """Chooses a pool per request among the plan's pools (see module docstring)."""

    def __init__(self, pools: Sequence[RoutablePool], fallback: Sequence[str]):
        self.pools = list(pools)
        by_name = {pool.name: pool for pool in self.pools}
        self.fallback_chain = [by_name[name] for name in fallback if name in by_name]

    def choose(self, request: RouteRequest, now: float, exclude: frozenset[str] = frozenset()) -> Route:
        """The pool to queue on; Rejected if none meets the deadline, Unavailable if none is up."""
        routed = self._routed_candidates(request, exclude)
        full = [pool for pool in routed if not pool.has_room(request.samples, request.priority)]
        routed = [pool for pool in routed if pool not in full]
        if full and not routed:
            raise self._queues_full(full, request, now)
        if routed:
            routes = [self._predict(pool, request, now) for pool in routed]
            chosen = self._earliest_in_time(routes, request)
        else:  # every primary and overflow pool is down: the fallback chain, in its order
            routes = [self._predict(pool, request, now) for pool in self._fallback_candidates(request, exclude)]
            chosen = self._first_in_time(routes, request)
        if chosen is not None:
            return chosen
        if request.tier == "degraded":
            degraded = [self._predict(pool, request, now) for pool in self._degraded_candidates(request, exclude)]
            chosen = self._earliest_in_time(degraded, request)
            if chosen is not None:
                return chosen
            routes += degraded
        if not routes:
            raise Unavailable(self._nothing_up_message(exclude), retry_after_s=1.0)
        raise self._rejection(routes, request)

    # --- candidates

    @staticmethod
    def _usable(pool: RoutablePool, request: RouteRequest, exclude: frozenset[str]) -> bool:
        return pool.up and pool.name not in exclude and pool.max_batch_size >= request.samples

    def _routed_candidates(self, request: RouteRequest, exclude: frozenset[str]) -> list[RoutablePool]:
        return [
            pool
            for pool in self.pools
            if pool.role in ROUTED_ROLES and not pool.degraded and self._usable(pool, request, exclude)
        ]

    def _fallback_candidates(self, request: RouteRequest, exclude: frozenset[str]) -> list[RoutablePool]:
        """The plan's fallback chain, then fallback pools it does not list, in plan order."""
        ordered = self.fallback_chain + [pool for pool in self.pools if pool not in self.fallback_chain]
        return [pool for pool in ordered if not pool.degraded and self._usable(pool, request, exclude)]

    def _degraded_candidates(self, request: RouteRequest, exclude: frozenset[str]) -> list[RoutablePool]:
        return [pool for pool in self.pools if pool.degraded and self._usable(pool, request, exclude)]

    # --- prediction and choice

    def _predict(self, pool: RoutablePool, request: RouteRequest, now: float) -> Route:
        seconds = predict_completion_s(pool.load(request.priority), request.samples, pool.predict_s)
        return Route(pool, now + seconds + pool.lateness_s(), now + seconds)

    @staticmethod
    def _earliest_in_time(routes: list[Route], request: RouteRequest) -> Route | None:
        in_time = [r for r in routes if request.deadline is None or r.completion <= request.deadline]
        return min(in_time, key=lambda r: r.completion, default=None)

    @staticmethod
    def _first_in_time(routes: list[Route], request: RouteRequest) -> Route | None:
        return next((r for r in routes if request.deadline is None or r.completion <= request.deadline), None)

    def _rejection(self, routes: list[Route], request: RouteRequest) -> Rejected:
        best = min(routes, key=lambda r: r.completion)
        assert request.deadline is not None  # without a deadline the earliest route is always in time
        budget_ms = (request.deadline - request.arrived + request.unseen_s) * 1000.0
        unseen = (
            f" ({request.unseen_s * 1000.0:.1f} ms of it spent before the server could read the request: "
            f"its event loop's recent lag)"
            if request.unseen_s >= 0.0005
            else ""
        )
        if best.completion == float("inf"):
            return Rejected(
                f"no pool can answer within {budget_ms:.0f} ms{unseen}: every pool is restarting", retry_after_s=1.0
            )
        earliest_ms = (best.completion - request.arrived) * 1000.0
        late_s = best.completion - request.deadline
        return Rejected(
            f"no pool can answer within {budget_ms:.0f} ms{unseen}; the earliest is {earliest_ms:.0f} ms on pool "
            f"{best.pool.name}; retry later or allow a longer timeout",
            retry_after_s=round(max(MIN_RETRY_AFTER_S, late_s), 3),
        )

    def _queues_full(self, pools: list[RoutablePool], request: RouteRequest, now: float) -> Rejected:
        drain_s = min(predict_completion_s(pool.load(request.priority), 1, pool.predict_s) for pool in pools)
        detail = ", ".join(f"{pool.name}: {pool.queue_text()}" for pool in pools)
        return Rejected(
            f"every pool's queue is full ({detail}) with nothing of lower priority than "
            f"level {level_of(request.priority)} to shed; retry later",
            retry_after_s=round(max(MIN_RETRY_AFTER_S, drain_s), 3),
        )

    def _nothing_up_message(self, exclude: frozenset[str]) -> str:
        reasons = []
        for pool in self.pools:
            if pool.name in exclude:
                reasons.append(f"{pool.name}: just failed this request")
            elif not pool.up:
                reasons.append(f"{pool.name}: {pool.down_reason or 'down'}")
        detail = "; ".join(reasons) or "the plan has no pool for this request's tier and size"
        return f"no pool can serve now ({detail}); retry later"
