"""Dynamic-batching pool model: the simulation against closed forms, the approximation against
the simulation, and the choice of max batch size / max queue delay."""

import math

import pytest

from hwfit.plan import choose_batching
from hwfit.simulate import QueueingError, ServiceCurve, approximate_p99_ms, capacity_rps, simulate_pool, waits_for_delay

# s(b) = 2 + 0.5·b ms, given by two points: the rest is interpolated or extrapolated
LINEAR = {1: 2.5, 8: 6.0}


def test_curve_interpolates_and_extrapolates():
    curve = ServiceCurve.from_points({1: 2.0, 4: 4.0, 8: 6.0})
    assert curve(1) == 2.0 and curve(8) == 6.0
    assert curve(2) == pytest.approx(2.0 + 2.0 / 3.0)  # between 1 and 4
    assert curve(6) == pytest.approx(5.0)  # between 4 and 8
    assert curve(16) == pytest.approx(10.0)  # beyond 8: slope of the last two points, 0.5 ms/request
    assert ServiceCurve.from_points({4: 3.0})(32) == 3.0  # one point: flat


@pytest.mark.parametrize("bad", [{}, {0: 1.0}, {2: -1.0}, {1.5: 2.0}, {1: float("nan")}])
def test_curve_rejects_bad_points(bad):
    with pytest.raises(QueueingError):
        ServiceCurve.from_points(bad)


@pytest.mark.parametrize("rho", [0.3, 0.6, 0.85])
def test_simulation_matches_md1_mean_wait(rho):
    # no batching (B = 1, d = 0) is M/D/1: mean wait W = ρ·s / (2(1 − ρ))
    service_ms = 4.0
    rate_rps = rho / service_ms * 1000.0
    stats = simulate_pool({1: service_ms}, 1, 1, 0.0, rate_rps, seed=1)
    expected_wait_ms = rho * service_ms / (2.0 * (1.0 - rho))
    assert stats.mean_ms - service_ms == pytest.approx(expected_wait_ms, rel=0.05)
    assert stats.mean_batch_size == 1.0
    assert stats.utilization == pytest.approx(rho, rel=0.03)
    assert stats.throughput_rps == pytest.approx(rate_rps, rel=0.03)
    assert stats.stable and stats.requests >= 100_000


def test_simulation_batch_formation_waits_only_while_another_request_is_expected():
    # at a very low rate every request is alone and no other is expected within the delay: it goes
    # at once (s(1)), as the server's batcher sends it, instead of waiting the full 3 ms for nobody
    stats = simulate_pool(LINEAR, 1, 8, 3.0, rate_rps=1.0, duration_s=2000, seed=2)
    assert stats.p50_ms == pytest.approx(2.5, abs=0.05)
    assert stats.mean_batch_size < 1.05
    # at 1000 req/s three more are expected within the 3 ms delay: batches wait for them
    busy = simulate_pool(LINEAR, 1, 8, 3.0, rate_rps=1000.0, duration_s=100, seed=2)
    assert busy.mean_batch_size > 2.0


def test_a_request_waits_for_the_delay_unless_it_is_alone_and_no_other_is_expected():
    assert waits_for_delay(0.0, 0.002, others_in_pool=True)  # other work in the pool: Triton's rule
    assert not waits_for_delay(0.0, 0.002, others_in_pool=False)  # one client at a time: nobody to wait for
    assert not waits_for_delay(100.0, 0.002, others_in_pool=False)  # 0.2 expected within the delay
    assert waits_for_delay(1000.0, 0.002, others_in_pool=False)  # 2 expected: worth waiting for


def test_simulation_fills_batches_under_load():
    low = simulate_pool(LINEAR, 1, 8, 2.0, rate_rps=200.0, seed=3)
    high = simulate_pool(LINEAR, 1, 8, 2.0, rate_rps=1200.0, seed=3)
    assert low.mean_batch_size < 2.0 < 5.0 < high.mean_batch_size <= 8.0
    assert high.utilization > low.utilization


@pytest.mark.parametrize("replicas", [1, 2])
def test_overload_is_unstable(replicas):
    rate_rps = 1.2 * capacity_rps(LINEAR, replicas, 8)
    stats = simulate_pool(LINEAR, replicas, 8, 2.0, rate_rps, duration_s=20, seed=4)
    assert not stats.stable and stats.load_ratio == pytest.approx(1.2)
    assert stats.throughput_rps < rate_rps  # it cannot keep up
    assert stats.mean_batch_size > 7.9  # every batch is full
    assert math.isinf(approximate_p99_ms(LINEAR, replicas, 8, 2.0, rate_rps))
    assert not choose_batching(LINEAR, replicas, rate_rps, 1000.0, max_batch_options=[8])


@pytest.mark.parametrize("replicas", [1, 2])
@pytest.mark.parametrize("rho", [0.3, 0.6, 0.85])
@pytest.mark.parametrize("max_batch,delay_ms", [(1, 0.0), (8, 2.0)])
def test_approximation_within_25_percent_of_simulation(replicas, rho, max_batch, delay_ms):
    # measured over a wider grid (see approximate_pool's docstring): worst 24% for c <= 2
    rate_rps = rho * capacity_rps(LINEAR, replicas, max_batch)
    simulated = simulate_pool(LINEAR, replicas, max_batch, delay_ms, rate_rps, seed=5).p99_ms
    estimated = approximate_p99_ms(LINEAR, replicas, max_batch, delay_ms, rate_rps)
    assert estimated == pytest.approx(simulated, rel=0.25)
