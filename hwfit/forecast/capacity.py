"""Capacity under traffic: the fewest devices of the plan's primary pool that hold the SLO at the
traffic's peak (simulated as `hwfit serve` runs it, and within the plan's headroom rule), how that
grows with traffic, and the growth factor at which the current fleet runs out.

"Holds" means, at a steady Poisson rate equal to the traffic's peak: the simulated p99 within the
SLO's p99, at most 0.1% of requests refused, and the peak within `headroom` × the routed pools'
capacity (the planner's rule: a pool planned at 100% busy has no room for a burst).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hwfit.core import Traffic, parse_traffic
from hwfit.forecast.simulation import MIN_SIM_REQUESTS, ForecastError, measured_points, server_host, sim_pools
from hwfit.plan import Plan, PoolPlan
from hwfit.simulate import HostModel, SimPool, capacity_rps, simulate_serving
from hwfit.store import ResultsStore

MAX_REFUSED_SHARE = 0.001
MIN_CHECK_S = 10.0
SATURATED = 3.0  # capacity, in multiples of what the headroom rule asks, past which a search stops
DEFAULT_GROWTH = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0)


@dataclass(frozen=True)
class Check:
    """The plan (with `devices` units of its primary pool) at one steady rate."""

    rate_rps: float
    devices: int
    p99_ms: float | None
    refused_share: float
    capacity_rps: float  # of the routed (primary and overflow) pools
    holds: bool
    why: str


@dataclass(frozen=True)
class CapacityAnswer:
    pool: str
    device: str
    devices_now: int
    devices_needed: int | None  # None: not within max_devices
    peak_rps: float
    check: Check | None  # the check at devices_needed


@dataclass(frozen=True)
class GrowthRow:
    factor: float
    peak_rps: float
    devices_needed: int | None
    p99_ms: float | None


@dataclass(frozen=True)
class Growth:
    rows: list[GrowthRow]
    fleet_devices: int
    fleet_limit_factor: float  # the current fleet holds the traffic up to this multiple of its peak
    fleet_limit_rps: float
    months_left: float | None  # at `monthly_growth`, when the fleet runs out (None: no growth rate given)
    monthly_growth: float | None


def primary_pool(plan: Plan) -> PoolPlan:
    for pool in plan.pools:
        if pool.role == "primary" and pool.tier == "full":
            return pool
    raise ForecastError("the plan has no full-tier primary pool to size; run `hwfit plan` for a feasible plan")


def with_devices(plan: Plan, devices: int) -> Plan:
    """The plan with its primary pool on `devices` units (same layout per unit)."""
    target = primary_pool(plan)
    pools = [replace_pool(pool, devices) if pool is target else pool for pool in plan.pools]
    return plan.model_copy(update={"pools": pools})


def replace_pool(pool: PoolPlan, devices: int) -> PoolPlan:
    return pool.model_copy(update={"devices": devices})


def routed_capacity(pools: list[SimPool]) -> float:
    return sum(p.capacity_rps for p in pools if p.role in ("primary", "overflow") and not p.degraded)


def check_at(
    plan: Plan,
    rate_rps: float,
    store: ResultsStore | None = None,
    host: HostModel | None = None,
    seed: int = 0,
    points: dict[str, object] | None = None,
) -> Check:
    """Simulate the plan at a steady Poisson `rate_rps` and judge it against the SLO (`points`: the
    store's measurements, read once by a caller that checks many times)."""
    pools, _ = sim_pools(plan, store, points=points)
    host = host or server_host(plan)
    duration = max(MIN_CHECK_S, MIN_SIM_REQUESTS / rate_rps)
    arrivals = parse_traffic(f"poisson:{rate_rps}").arrivals(duration, seed)
    result = simulate_serving(
        pools, arrivals, host, tuple(plan.fallback), warmup_s=min(2.0, duration * 0.05), seed=seed
    )
    capacity = routed_capacity(pools)
    slo = plan.slo
    reasons = []
    if result.p99_ms is None or result.p99_ms > slo.latency_p99_ms:
        reasons.append(f"p99 {_ms(result.p99_ms)} > {slo.latency_p99_ms:g} ms")
    if result.refused_share > MAX_REFUSED_SHARE:
        reasons.append(f"{result.refused_share:.1%} refused > {MAX_REFUSED_SHARE:.1%}")
    if rate_rps > slo.headroom * capacity:
        reasons.append(f"{rate_rps:.4g} req/s > headroom {slo.headroom:g} × capacity {capacity:.4g} req/s")
    devices = primary_pool(plan).devices
    why = "; ".join(reasons) or f"p99 {_ms(result.p99_ms)} within {slo.latency_p99_ms:g} ms, {result.refused} refused"
    return Check(rate_rps, devices, result.p99_ms, result.refused_share, capacity, not reasons, why)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def devices_needed(
    plan: Plan,
    traffic: Traffic | str,
    store: ResultsStore | None = None,
    host: HostModel | None = None,
    max_devices: int = 256,
    seed: int = 0,
) -> CapacityAnswer:
    """The fewest units of the primary pool's device that hold the SLO at the traffic's peak."""
    traffic = parse_traffic(traffic)
    pool = primary_pool(plan)
    peak = traffic.peak_rps
    per_device = capacity_rps(pool.service_ms, pool.replicas_per_device, pool.max_batch_size)
    points = measured_points(plan, store)
    others = routed_capacity([p for p in sim_pools(plan, points=points)[0] if p.name != pool.name])
    lowest = max(1, math.ceil((peak / plan.slo.headroom - others) / per_device - 1e-9))
    check = None
    for devices in range(lowest, max_devices + 1):
        check = check_at(with_devices(plan, devices), peak, store, host, seed, points)
        if check.holds:
            return CapacityAnswer(pool.name, pool.device, pool.devices, devices, peak, check)
        if check.capacity_rps >= SATURATED * peak / plan.slo.headroom:
            break  # queues are short at a third of the headroom: more devices only add idle capacity
    return CapacityAnswer(pool.name, pool.device, pool.devices, None, peak, check)


def fleet_limit(
    plan: Plan, traffic: Traffic, store: ResultsStore | None = None, host: HostModel | None = None, seed: int = 0
) -> float:
    """The largest multiple of the traffic's peak that the plan as it is still holds (bisection on the
    factor; 0 if it does not hold even a tenth of it)."""
    peak = traffic.peak_rps
    points = measured_points(plan, store)
    low, high = 0.0, None
    factor = 1.0
    for _ in range(12):  # bracket
        if check_at(plan, peak * factor, store, host, seed, points).holds:
            low = factor
            factor *= 2.0
        else:
            high = factor
            break
    if high is None:
        return low
    for _ in range(8):  # 8 halvings: within 1/256 of the bracket
        middle = (low + high) / 2.0
        if check_at(plan, peak * middle, store, host, seed, points).holds:
            low = middle
        else:
            high = middle
    return low


def growth(
    plan: Plan,
    traffic: Traffic | str,
    factors: tuple[float, ...] = DEFAULT_GROWTH,
    monthly_growth: float | None = None,
    store: ResultsStore | None = None,
    host: HostModel | None = None,
    seed: int = 0,
) -> Growth:
    """Devices needed as the traffic grows, and when the current fleet runs out."""
    traffic = parse_traffic(traffic)
    if any(not f > 0 for f in factors):
        raise ForecastError(f"growth factors must be > 0, got {list(factors)}")
    rows = []
    for factor in factors:
        answer = devices_needed(plan, traffic.scaled(factor), store, host, seed=seed)
        rows.append(
            GrowthRow(factor, answer.peak_rps, answer.devices_needed, answer.check.p99_ms if answer.check else None)
        )
    limit = fleet_limit(plan, traffic, store, host, seed)
    months = None
    if monthly_growth is not None:
        if not monthly_growth > 0:
            raise ForecastError(f"monthly growth must be > 0 (e.g. 0.05 for 5%/month), got {monthly_growth}")
        months = 0.0 if limit < 1.0 else math.log(limit) / math.log1p(monthly_growth)
    return Growth(rows, primary_pool(plan).devices, limit, limit * traffic.peak_rps, months, monthly_growth)
