"""What serving costs: $/1M inferences at the traffic, and the total cost of ownership over N years for
buying (capex + power × PUE × price per kWh + ops per device-year), leasing, and renting on demand or
reserved; the month at which buying breaks even with renting.

Prices come from the hardware catalog (cloud hourly rates, each with its source and date), the
default economics file (`data/economics.yaml`: PUE, purchase prices with sources) and the user's
`--prices FILE.yaml`, in rising precedence; every price says where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hwfit.forecast.simulation import ForecastError

HOURS_PER_MONTH = 730.0
DEFAULT_ECONOMICS_PATH = Path(__file__).parent / "data" / "economics.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourcedValue(_Strict):
    value: float = Field(ge=0)
    how: Literal["spec", "computed", "estimated", "given"] = "given"
    source: str = "your prices file"
    as_of: str | None = None


class SourcedPrice(_Strict):
    usd: float = Field(ge=0)
    how: Literal["spec", "computed", "estimated", "given"] = "given"
    source: str = "your prices file"
    as_of: str | None = None

    def label(self) -> str:
        date = f", as of {self.as_of}" if self.as_of else ""
        return f"{self.how}: {self.source}{date}"


class DevicePrices(_Strict):
    """What one unit of a device costs, per way of getting it."""

    buy: SourcedPrice | None = Field(default=None, description="USD per unit, bought")
    lease_per_month: SourcedPrice | None = Field(default=None, description="USD per unit per month")
    on_demand_per_hour: SourcedPrice | None = Field(default=None, description="USD per unit-hour, cloud on demand")
    reserved_per_hour: SourcedPrice | None = Field(default=None, description="USD per unit-hour, cloud reserved")


class Economics(_Strict):
    years: float = Field(default=3, gt=0, description="the TCO horizon in years")
    pue: SourcedValue | float = Field(default=1.0, description="power usage effectiveness, >= 1")
    electricity_usd_per_kwh: SourcedValue | float | None = None
    ops_usd_per_device_year: SourcedValue | float = 0.0
    devices: dict[str, DevicePrices] = Field(default_factory=dict)

    def value(self, name: str) -> SourcedValue | None:
        raw = getattr(self, name)
        if raw is None:
            return None
        return raw if isinstance(raw, SourcedValue) else SourcedValue(value=float(raw))

    def merged(self, other: Economics, given: set[str]) -> Economics:
        """`other`'s fields that were given in its file win; devices merge per price."""
        data = self.model_dump()
        for name in given - {"devices"}:
            data[name] = getattr(other, name)
        devices = {key: prices.model_dump() for key, prices in self.devices.items()}
        for key, prices in other.devices.items():
            current = devices.setdefault(key, {})
            current.update({k: v for k, v in prices.model_dump().items() if v is not None})
        data["devices"] = devices
        return Economics.model_validate(data)


def load_economics(path: str | Path | None = None) -> Economics:
    """The default economics, with the user's prices file over it (errors name the file and field)."""
    base = _read(DEFAULT_ECONOMICS_PATH)
    if path is None:
        return base
    raw = _raw(Path(path))
    user = _validate(Path(path), raw)
    return base.merged(user, set(raw))


def _raw(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ForecastError(f"{path}: cannot read the prices file ({error.strerror or error})") from None
    except yaml.YAMLError as error:
        raise ForecastError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ForecastError(f"{path}: a prices file is a YAML mapping (years, pue, devices: ...)")
    return data


def _read(path: Path) -> Economics:
    return _validate(path, _raw(path))


def _validate(path: Path, raw: dict) -> Economics:
    try:
        economics = Economics.model_validate(raw)
    except ValidationError as error:
        lines = []
        for item in error.errors():
            where = ".".join(str(part) for part in item["loc"])
            lines.append(f"{where}: {item['msg']} (got {item.get('input')!r:.60})")
        raise ForecastError(f"{path}: invalid prices file:\n  " + "\n  ".join(lines)) from None
    pue = economics.value("pue")
    if pue is not None and pue.value < 1:
        raise ForecastError(f"{path}: pue: must be >= 1 (facility power over IT power), got {pue.value}")
    return economics


@dataclass(frozen=True)
class Option:
    """One way of getting the devices, over the horizon."""

    name: str  # buy | lease | on-demand | reserved
    upfront_usd: float
    monthly_usd: float
    total_usd: float
    per_million: float | None  # at the traffic's mean rate
    sources: str


@dataclass(frozen=True)
class Tco:
    device: str
    devices: int
    years: float
    mean_rps: float
    power_w: float  # per device, average
    power_how: str
    options: list[Option]
    break_even_month: float | None  # buying vs the cheapest rental; None: never within reach / unknown
    missing: list[str]  # options left out, and the field that would add them

    def to_dict(self) -> dict:
        return {**{k: v for k, v in vars(self).items() if k != "options"}, "options": [vars(o) for o in self.options]}


def tco(
    device: str,
    devices: int,
    prices: DevicePrices,
    economics: Economics,
    mean_rps: float,
    power_w: float,
    power_how: str,
    price_per_kwh: float,
) -> Tco:
    """The cost of `devices` units of `device` serving `mean_rps` for `economics.years`."""
    if devices < 1:
        raise ForecastError(f"TCO needs at least one device, got {devices}")
    months = economics.years * 12.0
    pue = economics.value("pue") or SourcedValue(value=1.0)
    kwh_price = economics.value("electricity_usd_per_kwh") or SourcedValue(
        value=price_per_kwh, how="given", source="the plan's SLO price_per_kwh"
    )
    ops = economics.value("ops_usd_per_device_year") or SourcedValue(value=0.0)
    power_monthly = devices * power_w * pue.value * HOURS_PER_MONTH / 1000.0 * kwh_price.value
    ops_monthly = devices * ops.value / 12.0
    running = (
        f"power {power_w:.3g} W/device ({power_how}) × PUE {pue.value:g} ({pue.how}: {pue.source}) × "
        f"{kwh_price.value:g} USD/kWh ({kwh_price.source}); ops {ops.value:g} USD/device-year ({ops.source})"
    )
    inferences = mean_rps * months * HOURS_PER_MONTH * 3600.0
    options, missing = [], []

    def add(name: str, upfront: float, monthly: float, sources: str) -> None:
        total = upfront + monthly * months
        options.append(Option(name, upfront, monthly, total, total / inferences * 1e6 if inferences else None, sources))

    if prices.buy is not None:
        add("buy", devices * prices.buy.usd, power_monthly + ops_monthly, f"{prices.buy.label()}; {running}")
    else:
        missing.append("buy (give devices.<key>.buy.usd in --prices)")
    if prices.lease_per_month is not None:
        lease = devices * prices.lease_per_month.usd
        add("lease", 0.0, lease + power_monthly + ops_monthly, f"{prices.lease_per_month.label()}; {running}")
    else:
        missing.append("lease (give devices.<key>.lease_per_month.usd)")
    for name, price in (("on-demand", prices.on_demand_per_hour), ("reserved", prices.reserved_per_hour)):
        if price is not None:
            add(name, 0.0, devices * price.usd * HOURS_PER_MONTH, f"{price.label()}; power and ops included")
        else:
            missing.append(f"{name} (give devices.<key>.{name.replace('-', '_')}_per_hour.usd)")
    return Tco(
        device,
        devices,
        economics.years,
        mean_rps,
        power_w,
        power_how,
        options,
        break_even_month(options),
        missing,
    )


def break_even_month(options: list[Option]) -> float | None:
    """The month at which buying has cost no more than the cheapest rental (None if no purchase price, no
    rental, or renting stays cheaper every month)."""
    buy = next((o for o in options if o.name == "buy"), None)
    rentals = [o for o in options if o.name != "buy" and o.upfront_usd == 0]
    if buy is None or not rentals:
        return None
    cheapest = min(rentals, key=lambda o: o.monthly_usd)
    saving = cheapest.monthly_usd - buy.monthly_usd
    if saving <= 0:
        return None
    return buy.upfront_usd / saving
