"""Capacity search, growth and the fleet limit on a small CPU plan, judged against the simulator."""

import pytest

from hwfit.forecast import ForecastError, check_at, devices_needed, fleet_limit, growth, simulate_plan
from tests.forecast._plans import plan, pool


def test_one_device_holds_below_headroom_and_more_are_found_above():
    base = plan()  # capacity 200 req/s per device, headroom 0.7: 140 req/s per device at most
    assert devices_needed(base, "poisson:100").devices_needed == 1
    answer = devices_needed(base, "poisson:500")
    assert answer.devices_needed == 4  # 500 / 140 -> 4 (3 would be over the headroom)
    assert answer.check.holds and answer.check.capacity_rps == pytest.approx(800)
    assert not check_at(base.model_copy(update={"pools": [base.pools[0].model_copy(update={"devices": 3})]}), 500).holds


def test_the_peak_decides_not_the_mean():
    assert devices_needed(plan(), "diurnal:400,20,1h").devices_needed == 3  # 400 / 140
    assert devices_needed(plan(), "poisson:210").devices_needed == 2


def test_a_latency_floor_above_the_slo_is_never_held():
    tight = plan(p99_ms=15.0)  # s(1) = 10 ms plus the batcher's 2 ms delay and queueing
    answer = devices_needed(tight, "poisson:150")
    assert answer.devices_needed is None and not answer.check.holds
    assert "refused" in answer.check.why  # the deadline refuses whatever would queue behind a batch
    assert answer.check.devices == 4  # stopped at 3x what the headroom asks (150 / 0.7 / 200 -> 2 devices)


def test_growth_rows_and_when_the_fleet_runs_out():
    grown = growth(plan(), "poisson:70", factors=(1, 2, 4), monthly_growth=0.1)
    assert [row.devices_needed for row in grown.rows] == [1, 1, 2]  # 70, 140, 280 req/s
    assert grown.fleet_limit_factor == pytest.approx(2.0, abs=0.1)  # one device holds up to 140 req/s
    assert grown.months_left == pytest.approx(7.3, abs=0.8)  # 1.1^m = 2


def test_fleet_limit_of_an_overloaded_plan_is_below_one():
    from hwfit.core import parse_traffic

    assert fleet_limit(plan(), parse_traffic("poisson:280")) == pytest.approx(0.5, abs=0.05)


def test_simulate_plan_uses_the_store_jitter_and_names_its_sources(tmp_path):
    from tests.forecast._plans import store_with_points

    store = store_with_points(tmp_path / "r.db")
    sim = simulate_plan(plan(), "poisson:50", duration_s=60, store=store)
    assert sim.sources[0].jitter.startswith("lognormal sigma 0.078")  # ln(1.2) / 2.326
    assert "0.5 J/inference" in sim.sources[0].energy
    assert sim.result.energy_j == pytest.approx(0.5 * sim.result.answered)
    assert sim.host.deadline_ms == 100.0  # the SLO p99, as hwfit serve sets it
    no_store = simulate_plan(plan(), "poisson:50", duration_s=60)
    assert no_store.sources[0].jitter.startswith("none")


def test_bad_inputs_are_named():
    with pytest.raises(ForecastError, match="outage names"):
        simulate_plan(plan(), "poisson:10", outages={"nope": [(1, 2)]})
    with pytest.raises(ForecastError, match="growth factors"):
        growth(plan(), "poisson:10", factors=(1, -2))
    with pytest.raises(ForecastError, match="primary"):
        devices_needed(plan([{**pool(), "tier": "degraded"}]), "poisson:10")
