"""`hwfit forecast`: for a plan and its traffic, the devices needed now and as traffic grows, the same
for hardware never measured (what-if, estimated by the roofline), and what each costs ($/1M inferences
at the SLO and TCO over years) — so device classes are compared by the cost of useful work, not by peak
FLOP/s."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hwfit.core import Traffic, parse_traffic
from hwfit.forecast.capacity import CapacityAnswer, Growth, devices_needed, growth, primary_pool
from hwfit.forecast.simulation import ForecastError
from hwfit.forecast.tco import DevicePrices, Economics, SourcedPrice, Tco, load_economics, tco
from hwfit.forecast.whatif import WhatIfCurve, estimate_curve, with_curve
from hwfit.hardware import Catalog, load_catalog
from hwfit.plan import Plan, PoolPlan
from hwfit.simulate import HostModel, capacity_rps
from hwfit.store import ResultsStore

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DeviceForecast:
    """One device class serving the traffic: the plan's own, or a what-if."""

    label: str  # the plan's device, or the what-if target
    how: str  # measured | estimated
    note: str  # where the service times came from
    capacity: CapacityAnswer
    tco: Tco | None
    curve_ms: dict[int, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        answer = self.capacity
        return {
            "label": self.label,
            "how": self.how,
            "note": self.note,
            "devices_needed": answer.devices_needed,
            "peak_rps": answer.peak_rps,
            "check": vars(answer.check) if answer.check else None,
            "service_ms": self.curve_ms,
            "tco": self.tco.to_dict() if self.tco else None,
        }


@dataclass(frozen=True)
class Forecast:
    traffic: str
    peak_rps: float
    mean_rps: float
    devices: list[DeviceForecast]
    growth: Growth | None

    def to_dict(self) -> dict:
        return {
            "traffic": self.traffic,
            "peak_rps": self.peak_rps,
            "mean_rps": self.mean_rps,
            "devices": [d.to_dict() for d in self.devices],
            "growth": None
            if self.growth is None
            else {**vars(self.growth), "rows": [vars(row) for row in self.growth.rows]},
        }


def device_prices(pool: PoolPlan, label: str, economics: Economics, catalog: Catalog) -> DevicePrices:
    """One unit's prices: the catalog's hourly rate (a CPU: per core × the cores the pool's layout takes),
    then the economics file's (defaults, then the user's), which win."""
    found: dict[str, SourcedPrice] = {}
    if label.startswith("cpu") and catalog.cpu_price is not None:
        cores = (pool.threads or 1) * pool.replicas_per_device
        price = catalog.cpu_price
        found["on_demand_per_hour"] = SourcedPrice(
            usd=price.value * cores,
            how=price.how,
            source=f"catalog {price.value:g} USD/core-hour × {cores} cores: {price.source}",
        )
    spec = catalog.spec(label)
    if spec is not None and spec.price is not None and spec.price.unit.endswith("hour"):
        reserved = "reserv" in spec.price.source.lower() or "capacity block" in spec.price.source.lower()
        found["reserved_per_hour" if reserved else "on_demand_per_hour"] = SourcedPrice(
            usd=spec.price.value, how=spec.price.how, source=f"catalog: {spec.price.source}"
        )
    given = economics.devices.get(label) or economics.devices.get(label.split(":")[0])
    if given is not None:
        found.update({k: v for k, v in given if v is not None})
    return DevicePrices(**found)


def _power_w(pool: PoolPlan, label: str, mean_rps: float, devices: int, catalog: Catalog) -> tuple[float, str]:
    """Average power per device: on a catalog GPU, TDP × busy share (estimated); else the plan's energy per
    inference × the rate. Idle draw is not included in either."""
    spec = catalog.spec(label)
    if spec is not None:
        capacity = capacity_rps(pool.service_ms, pool.replicas_per_device, pool.max_batch_size)
        busy = min(1.0, mean_rps / (devices * capacity))
        watts = spec.tdp_w.value * busy
        return watts, f"estimated: TDP {spec.tdp_w.value:g} W × busy share {busy:.2f}; idle draw not included"
    j = pool.expected.j_per_inference
    if j is None:
        return 0.0, "unknown (the plan has no energy figure): power not costed"
    how = f"{j:.3g} J/inference ({pool.expected.energy_how}) × {mean_rps:.4g} req/s; idle draw not included"
    return j * mean_rps / devices, how


def forecast_plan(
    plan: Plan,
    traffic: Traffic | str,
    store: ResultsStore | None = None,
    what_if: tuple[str, ...] = (),
    factors: tuple[float, ...] | None = None,
    monthly_growth: float | None = None,
    economics: Economics | None = None,
    host: HostModel | None = None,
    catalog: Catalog | None = None,
    progress: Progress | None = None,
    seed: int = 0,
) -> Forecast:
    say = progress or (lambda message: None)
    traffic = parse_traffic(traffic)
    economics = economics or load_economics()
    catalog = catalog or load_catalog()
    pool = primary_pool(plan)
    mean = traffic.mean_rps()
    say(f"capacity of {pool.device} at the peak ({traffic.peak_rps:.4g} req/s)")
    own = devices_needed(plan, traffic, store, host, seed=seed)
    forecasts = [
        _device_forecast(
            pool.device,
            "measured",
            "the plan's measured service times",
            pool,
            own,
            mean,
            economics,
            catalog,
            plan,
            dict(pool.service_ms),
        )
    ]
    grown = None
    if factors is not None or monthly_growth is not None:
        say("growth: devices needed as traffic grows")
        kwargs = {} if factors is None else {"factors": factors}
        grown = growth(plan, traffic, monthly_growth=monthly_growth, store=store, host=host, seed=seed, **kwargs)
    for target in what_if:
        say(f"what-if: {target}")
        if store is None:
            raise ForecastError("a what-if estimate needs the results store the plan was measured into")
        estimate = estimate_curve(pool, target, store, plan.model.hash, catalog)
        moved = with_curve(pool, estimate)
        what_plan = plan.model_copy(update={"pools": [moved if p is pool else p for p in plan.pools]})
        answer = devices_needed(what_plan, traffic, store, host, seed=seed)
        forecasts.append(
            _device_forecast(
                target,
                estimate.how,
                estimate.summary,
                moved,
                answer,
                mean,
                economics,
                catalog,
                plan,
                estimate.service_ms,
                estimate,
            )
        )
    return Forecast(traffic.spec, traffic.peak_rps, mean, forecasts, grown)


def _device_forecast(
    label: str,
    how: str,
    note: str,
    pool: PoolPlan,
    answer: CapacityAnswer,
    mean_rps: float,
    economics: Economics,
    catalog: Catalog,
    plan: Plan,
    curve: dict[int, float],
    estimate: WhatIfCurve | None = None,
) -> DeviceForecast:
    cost = None
    if answer.devices_needed:
        prices = device_prices(pool, label, economics, catalog)
        power, power_how = _power_w(pool, label, mean_rps, answer.devices_needed, catalog)
        cost = tco(label, answer.devices_needed, prices, economics, mean_rps, power, power_how, plan.slo.price_per_kwh)
    return DeviceForecast(label, how, note, answer, cost, {int(b): float(ms) for b, ms in curve.items()})
