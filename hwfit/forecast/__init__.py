"""The forecast layer: a plan under real traffic (`hwfit simulate`), the devices it needs as traffic
grows, estimates for hardware never measured (roofline from a measured reference), and what it all
costs ($/1M, TCO over years, buy vs rent). Imports core, hardware, store, simulate and plan."""

from hwfit.forecast.capacity import (
    DEFAULT_GROWTH,
    CapacityAnswer,
    Check,
    Growth,
    GrowthRow,
    check_at,
    devices_needed,
    fleet_limit,
    growth,
    primary_pool,
    with_devices,
)
from hwfit.forecast.fleet import DeviceForecast, Forecast, device_prices, forecast_plan
from hwfit.forecast.simulation import (
    ForecastError,
    PlanSimulation,
    PoolSource,
    server_host,
    sim_pools,
    simulate_plan,
)
from hwfit.forecast.tco import DevicePrices, Economics, Option, SourcedPrice, Tco, break_even_month, load_economics, tco
from hwfit.forecast.whatif import Rates, WhatIfCurve, estimate_curve, fixed_overhead_ms, target_rates, with_curve

__all__ = [
    "CapacityAnswer",
    "Check",
    "DEFAULT_GROWTH",
    "DeviceForecast",
    "DevicePrices",
    "Economics",
    "Forecast",
    "ForecastError",
    "Growth",
    "GrowthRow",
    "Option",
    "PlanSimulation",
    "PoolSource",
    "Rates",
    "SourcedPrice",
    "Tco",
    "WhatIfCurve",
    "break_even_month",
    "check_at",
    "device_prices",
    "devices_needed",
    "estimate_curve",
    "fixed_overhead_ms",
    "fleet_limit",
    "forecast_plan",
    "growth",
    "load_economics",
    "primary_pool",
    "server_host",
    "sim_pools",
    "simulate_plan",
    "target_rates",
    "tco",
    "with_curve",
    "with_devices",
]
