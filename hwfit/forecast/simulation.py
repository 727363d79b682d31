"""A plan's pools as the simulator runs them, and `hwfit simulate`: the plan under a traffic shape.

Each plan pool becomes a `simulate.SimPool`: its curve (`service_ms`), replicas, max batch and delay
as the plan says; its jitter from the store (the measured p99/p50 of the points the pool rests on);
its energy per inference and hourly hardware cost from the plan's own figures. The server's default
deadline is the plan's SLO p99, as `hwfit serve` sets it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from hwfit.core import Device, HwfitError, Traffic, parse_traffic
from hwfit.plan import JOULES_PER_KWH, Plan, PoolPlan
from hwfit.simulate import HostModel, ServingResult, SimPool, jitter_sigma_from, simulate_serving
from hwfit.store import ResultsStore

MIN_SIM_REQUESTS = 20_000  # below this many arrivals, the window is lengthened for stable percentiles


class ForecastError(HwfitError):
    """A forecast or simulation input is unusable (the message names it and what was expected)."""


@dataclass(frozen=True)
class PoolSource:
    """Where a simulated pool's figures came from, for the output to say."""

    pool: str
    jitter: str
    energy: str
    cost: str


@dataclass(frozen=True)
class PlanSimulation:
    traffic: Traffic
    duration_s: float
    warmup_s: float
    seed: int
    host: HostModel
    result: ServingResult
    sources: list[PoolSource] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "traffic": self.traffic.spec,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "seed": self.seed,
            "host": vars(self.host),
            "result": self.result.to_dict(),
            "sources": [vars(source) for source in self.sources],
        }


def pool_jitter(pool: PoolPlan, measured: dict[str, object]) -> tuple[float, str]:
    """The lognormal sigma of the pool's service time, from the p99/p50 of the store's points it rests on."""
    keys = list(dict.fromkeys([*pool.measured_from, pool.variant]))
    sigmas, used = [], []
    for key in keys:
        point = measured.get(key)
        latency = getattr(point, "latency", None)
        if latency is not None and latency.p50_ms > 0:
            sigmas.append(jitter_sigma_from(latency.p50_ms, latency.p99_ms))
            used.append(f"{key} p99/p50 {latency.p99_ms / latency.p50_ms:.3f}")
    if not sigmas:
        return 0.0, "none: no measurement of this pool in the store (service times exactly the curve)"
    sigma = statistics.median(sigmas)
    return sigma, f"lognormal sigma {sigma:.3f} from the store ({'; '.join(used[:3])}{'...' if len(used) > 3 else ''})"


def pool_hourly_cost(pool: PoolPlan, price_per_kwh: float) -> tuple[float | None, str]:
    """The pool's hardware cost per hour: its planned $/1M at its planned rate, less the energy part."""
    expected = pool.expected
    if expected.cost_per_million is None or not expected.rate_rps:
        return None, "unknown: the plan has no cost for this pool (no price for its device)"
    energy_per_million = (expected.j_per_inference or 0.0) * 1e6 / JOULES_PER_KWH * price_per_kwh
    hardware_per_million = max(expected.cost_per_million - energy_per_million, 0.0)
    per_hour = hardware_per_million * expected.rate_rps * 3600.0 / 1e6
    return (
        per_hour,
        f"{per_hour:.4g} USD/h: the plan's ${expected.cost_per_million:.3g}/M at {expected.rate_rps:.4g} req/s",
    )


def sim_pools(
    plan: Plan,
    store: ResultsStore | None = None,
    outages: dict[str, list[tuple[float, float]]] | None = None,
    points: dict[str, object] | None = None,
) -> tuple[list[SimPool], list[PoolSource]]:
    """The plan's pools for the simulator, and where each figure came from. `points` (from
    `measured_points`) spares a search that simulates many times from reading the store each time."""
    if not plan.pools:
        raise ForecastError("the plan has no pools to simulate (an infeasible plan?); run `hwfit plan` for one")
    outages = outages or {}
    unknown = sorted(set(outages) - {pool.name for pool in plan.pools})
    if unknown:
        raise ForecastError(
            f"outage names pool(s) {unknown} that the plan does not have; its pools are "
            f"{[pool.name for pool in plan.pools]}"
        )
    measured = points if points is not None else measured_points(plan, store)
    pools, sources = [], []
    for pool in plan.pools:
        sigma, jitter_how = pool_jitter(pool, measured)
        cost, cost_how = pool_hourly_cost(pool, plan.slo.price_per_kwh)
        energy = pool.expected.j_per_inference
        energy_how = (
            f"{energy:.3g} J/inference ({pool.expected.energy_how or 'how unknown'}, from the plan)"
            if energy is not None
            else "unknown: the plan has no energy figure for this pool"
        )
        pools.append(
            SimPool.from_points(
                pool.name,
                pool.service_ms,
                replicas=pool.replicas,
                max_batch=pool.max_batch_size,
                max_queue_delay_ms=pool.max_queue_delay_ms,
                role=pool.role,
                degraded=pool.tier == "degraded",
                jitter="lognormal",
                jitter_sigma=sigma,
                j_per_inference=energy,
                cost_per_hour=cost,
                outages=tuple(outages.get(pool.name, ())),
                cores_per_replica=float(pool.threads or 1) if Device.parse(pool.device).is_cpu else 0.0,
            )
        )
        sources.append(PoolSource(pool.name, jitter_how, energy_how, cost_how))
    return pools, sources


def measured_points(plan: Plan, store: ResultsStore | None) -> dict[str, object]:
    """The store's newest measurement of each variant of the plan's model (empty without a store)."""
    if store is None:
        return {}
    points: dict[str, object] = {}
    for _run, measurement in store.measurements_for_model(plan.model.hash):
        points.setdefault(measurement.variant_key, measurement)  # newest run first: keep the newest
    return points


def server_host(
    plan: Plan,
    overhead_ms: float = 0.0,
    host_cpu_ms_per_request: float = 0.0,
    cores: float | None = None,
    degraded_share: float = 0.0,
    deadline_ms: float | None = -1.0,
    service_stretch: float = 1.0,
) -> HostModel:
    """The server as `hwfit serve PLAN` runs it: its default deadline is the SLO's p99 (-1), unless given
    (None: no deadline)."""
    deadline = plan.slo.latency_p99_ms if deadline_ms is not None and deadline_ms < 0 else deadline_ms
    if not service_stretch > 0:
        raise ForecastError(f"the service stretch must be > 0 (1 = the measured curve), got {service_stretch}")
    return HostModel(overhead_ms, deadline, host_cpu_ms_per_request, cores, degraded_share, service_stretch)


def simulate_plan(
    plan: Plan,
    traffic: Traffic | str,
    duration_s: float | None = None,
    seed: int = 0,
    store: ResultsStore | None = None,
    host: HostModel | None = None,
    warmup_s: float | None = None,
    bin_s: float | None = None,
    outages: dict[str, list[tuple[float, float]]] | None = None,
) -> PlanSimulation:
    """Simulate `hwfit serve PLAN` under `traffic` for `duration_s` (the shape's own length by default:
    one period, two burst cycles, the trace; a steady rate runs long enough for 20,000 requests)."""
    traffic = parse_traffic(traffic)
    if duration_s is None:
        duration_s = traffic.natural_duration_s
        if traffic.mean_rps(duration_s) * duration_s < MIN_SIM_REQUESTS and traffic.spec.split(":")[0] in (
            "poisson",
            "constant",
        ):
            duration_s = MIN_SIM_REQUESTS / traffic.peak_rps
    if warmup_s is None:
        warmup_s = min(2.0, duration_s * 0.05)
    pools, sources = sim_pools(plan, store, outages)
    host = host or server_host(plan)
    arrivals = traffic.arrivals(duration_s, seed)
    if len(arrivals) == 0:
        raise ForecastError(f"traffic {traffic.spec!r} sends nothing in {duration_s:g} s: a longer --duration")
    result = simulate_serving(pools, arrivals, host, tuple(plan.fallback), warmup_s, bin_s, seed)
    return PlanSimulation(traffic, duration_s, warmup_s, seed, host, result, sources)
