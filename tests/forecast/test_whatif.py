"""What-if estimates by the roofline from a measured reference, and the measurement winning."""

import pytest

from hwfit.forecast import ForecastError, estimate_curve, fixed_overhead_ms, forecast_plan
from tests.forecast._plans import CURVE, MODEL_HASH, plan, store_with_points


def test_overhead_is_the_intercept():
    assert fixed_overhead_ms({1: 10.0, 8: 40.0}) == pytest.approx(10 - 30 / 7)
    assert fixed_overhead_ms({4: 10.0}) == 0.0
    assert fixed_overhead_ms({1: 1.0, 8: 80.0}) == 0.0  # a negative intercept is clipped
    assert fixed_overhead_ms({1: 10.0, 2: 10.0, 4: 10.0}) == pytest.approx(10.0)  # all overhead


def test_compute_and_memory_bound_batches_scale_with_their_roof(tmp_path):
    # reference: peak 1e12, bandwidth 5e10 (ridge 20 FLOP/byte); b1 at 10 FLOP/byte is memory-bound,
    # b8 at 80 compute-bound. Doubling threads doubles the peak, not the bandwidth.
    store = store_with_points(tmp_path / "r.db")
    pool = plan().pools[0]
    threads = estimate_curve(pool, "cpu:threads=2", store, MODEL_HASH)
    overhead = fixed_overhead_ms(CURVE)
    assert threads.ratio[1] == pytest.approx(1.0)  # memory-bound: unchanged
    assert threads.service_ms[8] == pytest.approx(overhead + (40 - overhead) / 2)  # compute-bound: half
    assert threads.bound == {1: "memory", 8: "compute"} and threads.how == "estimated"
    replicas = estimate_curve(pool, "cpu:replicas=2", store, MODEL_HASH)
    assert replicas.service_ms[1] == pytest.approx(overhead + (10 - overhead) * 2)  # half the bandwidth each
    assert replicas.ratio[8] == pytest.approx(1.0)


def test_a_catalog_gpu_and_its_label(tmp_path):
    store = store_with_points(tmp_path / "r.db")
    estimate = estimate_curve(plan().pools[0], "h100-sxm", store, MODEL_HASH)
    assert all(ms < CURVE[b] for b, ms in estimate.service_ms.items())
    assert "estimated from cpu" in estimate.summary and "H100" in estimate.summary
    with pytest.raises(ForecastError, match="not in the catalog"):
        estimate_curve(plan().pools[0], "tpu-v9", store, MODEL_HASH)


def test_no_reference_counts_is_an_error_that_says_what_to_do(tmp_path):
    store = store_with_points(tmp_path / "r.db", flops_per_sample=None)
    with pytest.raises(ForecastError, match="FLOP"):
        estimate_curve(plan().pools[0], "l4", store, MODEL_HASH)


def test_forecast_compares_devices_by_cost_of_useful_work(tmp_path):
    store = store_with_points(tmp_path / "r.db")
    result = forecast_plan(plan(), "poisson:300", store, what_if=("cpu:threads=2", "h100-sxm"), factors=(1, 2))
    labels = [d.label for d in result.devices]
    assert labels == ["cpu", "cpu:threads=2", "h100-sxm"]
    cpu, two_threads, h100 = result.devices
    assert cpu.how == "measured" and h100.how == "estimated"
    assert cpu.capacity.devices_needed == 3 and two_threads.capacity.devices_needed < 3
    assert {o.name for o in h100.tco.options} >= {"buy", "on-demand"}  # the default purchase price and the catalog's
    assert [row.factor for row in result.growth.rows] == [1, 2]
