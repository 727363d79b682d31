"""TCO arithmetic, break-even, and the prices file's errors."""

import pytest

from hwfit.forecast import DevicePrices, ForecastError, SourcedPrice, break_even_month, load_economics, tco
from hwfit.forecast.tco import HOURS_PER_MONTH, Economics


def _prices(**values):
    return DevicePrices(**{k: SourcedPrice(usd=v, source="test") for k, v in values.items()})


def test_buy_lease_rent_totals():
    economics = Economics(years=3, pue=1.5, ops_usd_per_device_year=1200, electricity_usd_per_kwh=0.2)
    prices = _prices(buy=30000, lease_per_month=1000, on_demand_per_hour=4.0, reserved_per_hour=2.5)
    result = tco("gpu", 2, prices, economics, mean_rps=100.0, power_w=400.0, power_how="test", price_per_kwh=0.1)
    options = {o.name: o for o in result.options}
    power_month = 2 * 400 * 1.5 * HOURS_PER_MONTH / 1000 * 0.2  # the file's electricity price wins
    ops_month = 2 * 1200 / 12
    assert options["buy"].upfront_usd == 60000
    assert options["buy"].monthly_usd == pytest.approx(power_month + ops_month)
    assert options["buy"].total_usd == pytest.approx(60000 + 36 * (power_month + ops_month))
    assert options["lease"].monthly_usd == pytest.approx(2000 + power_month + ops_month)
    assert options["on-demand"].total_usd == pytest.approx(2 * 4.0 * HOURS_PER_MONTH * 36)
    inferences = 100.0 * 36 * HOURS_PER_MONTH * 3600
    assert options["reserved"].per_million == pytest.approx(options["reserved"].total_usd / inferences * 1e6)
    # buying breaks even with the cheapest rental (the lease: 2,000 + running costs a month, less than
    # reserved's 3,650) when the saved rent pays the capex: 60,000 / 2,000
    assert result.break_even_month == pytest.approx(30.0)
    assert result.missing == []


def test_missing_prices_are_listed_and_no_break_even_without_a_purchase():
    result = tco("cpu", 1, _prices(on_demand_per_hour=0.1), Economics(), 10.0, 50.0, "test", 0.15)
    assert [o.name for o in result.options] == ["on-demand"]
    assert any(m.startswith("buy") for m in result.missing) and result.break_even_month is None


def test_renting_cheaper_than_running_never_breaks_even():
    result = tco("x", 1, _prices(buy=1000, on_demand_per_hour=0.001), Economics(pue=1.0), 1.0, 1000.0, "t", 0.5)
    assert break_even_month(result.options) is None


def test_prices_file_overrides_defaults_and_errors_name_the_field(tmp_path):
    path = tmp_path / "prices.yaml"
    path.write_text("years: 5\ndevices:\n  h100-sxm:\n    lease_per_month: {usd: 2000, source: my broker}\n")
    economics = load_economics(path)
    assert economics.years == 5
    assert economics.devices["h100-sxm"].lease_per_month.usd == 2000
    assert economics.devices["h100-sxm"].buy is not None  # the default purchase price stays
    assert economics.value("pue").value == pytest.approx(1.56)  # the default, with its source
    path.write_text("years: -1\n")
    with pytest.raises(ForecastError, match="years"):
        load_economics(path)
    path.write_text("devices:\n  l4:\n    buy: {dollars: 3}\n")
    with pytest.raises(ForecastError, match="devices.l4.buy"):
        load_economics(path)
    path.write_text("pue: 0.8\n")
    with pytest.raises(ForecastError, match="pue"):
        load_economics(path)
    with pytest.raises(ForecastError, match="cannot read"):
        load_economics(tmp_path / "missing.yaml")
