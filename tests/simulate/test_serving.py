"""The whole-server simulation against closed forms (M/D/1, M/M/c), the one-pool batcher model, and
the server's own rules: routing by predicted completion, refusals at the deadline, fallback, degraded tier."""

import math

import numpy as np
import pytest

from hwfit.core import parse_traffic
from hwfit.simulate import HostModel, QueueingError, SimPool, jitter_sigma_from, simulate_pool, simulate_serving

UNBOUNDED = 10**9


def _pool(name="p", curve=None, **kwargs):
    kwargs.setdefault("replicas", 1)
    kwargs.setdefault("max_batch", 1)
    kwargs.setdefault("max_queue_delay_ms", 0.0)
    kwargs.setdefault("queue_limit_samples", UNBOUNDED)
    kwargs.setdefault("jitter", "none")
    return SimPool.from_points(name, curve or {1: 10.0}, **kwargs)


def _erlang_c_wait_ms(rate: float, service_ms: float, servers: int) -> float:
    """Mean time in system of M/M/c (Erlang C)."""
    mu = 1000.0 / service_ms
    a = rate / mu
    rho = a / servers
    terms = sum(a**k / math.factorial(k) for k in range(servers))
    tail = a**servers / math.factorial(servers) / (1 - rho)
    waiting = tail / (terms + tail)
    return (waiting / (servers * mu - rate) + 1 / mu) * 1000.0


@pytest.mark.parametrize("rho", [0.3, 0.6, 0.85])
def test_md1_mean_latency_is_pollaczek_khinchine(rho):
    service_ms = 10.0
    rate = rho * 1000.0 / service_ms
    arrivals = parse_traffic(f"poisson:{rate}").arrivals(120_000 / rate, seed=1)
    result = simulate_serving([_pool()], arrivals, warmup_s=5)
    expected = service_ms + rho * service_ms / (2 * (1 - rho))
    assert np.mean(result.latencies_ms) == pytest.approx(expected, rel=0.04)
    assert result.pools[0].utilization == pytest.approx(rho, rel=0.03)
    assert result.refused == 0 and result.answered == result.offered


@pytest.mark.parametrize(("servers", "rate"), [(1, 70.0), (2, 150.0), (4, 320.0)])
def test_mmc_mean_latency_is_erlang_c(servers, rate):
    pool = _pool(replicas=servers, jitter="exponential")
    arrivals = parse_traffic(f"poisson:{rate}").arrivals(150_000 / rate, seed=2)
    result = simulate_serving([pool], arrivals, warmup_s=5)
    assert np.mean(result.latencies_ms) == pytest.approx(_erlang_c_wait_ms(rate, 10.0, servers), rel=0.05)


def test_one_batching_pool_agrees_with_the_batcher_model():
    curve = {1: 4.0, 8: 12.0, 16: 20.0}
    rate = 600.0
    reference = simulate_pool(curve, 2, 16, 2.0, rate, seed=3)
    arrivals = parse_traffic(f"poisson:{rate}").arrivals(200_000 / rate, seed=3)
    result = simulate_serving([_pool(curve=curve, replicas=2, max_batch=16, max_queue_delay_ms=2.0)], arrivals)
    assert result.p50_ms == pytest.approx(reference.p50_ms, rel=0.05)
    assert result.p99_ms == pytest.approx(reference.p99_ms, rel=0.08)
    assert result.pools[0].mean_batch_size == pytest.approx(reference.mean_batch_size, rel=0.05)


def test_above_capacity_the_deadline_refuses_the_excess():
    pool = _pool(queue_limit_samples=None)  # the server's queue rule
    capacity = pool.capacity_rps  # 100/s
    arrivals = parse_traffic("poisson:200").arrivals(60, seed=4)
    result = simulate_serving([pool], arrivals, HostModel(deadline_ms=100.0), warmup_s=5)
    assert result.answered_rps == pytest.approx(capacity, rel=0.05)
    assert result.refused_share == pytest.approx(1 - capacity / 200.0, abs=0.05)
    assert set(result.refused_reasons) <= {"deadline", "queue full"}
    assert result.p99_ms <= 100.0 * 1.25  # accepted requests are answered near their deadline, not later


def test_router_sends_more_to_the_faster_pool_and_uses_both():
    fast = _pool("fast", {1: 5.0})
    slow = _pool("slow", {1: 20.0}, role="overflow")
    arrivals = parse_traffic("poisson:190").arrivals(60, seed=5)
    result = simulate_serving([fast, slow], arrivals)
    by_name = {p.name: p for p in result.pools}
    assert by_name["fast"].answered > 2 * by_name["slow"].answered > 0
    assert result.answered == result.offered


def test_fallback_takes_over_during_an_outage():
    primary = _pool("primary", {1: 5.0}, outages=((10.0, 20.0),))
    backup = _pool("backup", {1: 8.0}, role="fallback")
    arrivals = parse_traffic("poisson:50").arrivals(30, seed=6)
    result = simulate_serving([primary, backup], arrivals, fallback=("backup",), bin_s=5.0)
    by_name = {p.name: p for p in result.pools}
    assert result.answered == result.offered  # nothing lost
    assert by_name["backup"].answered == pytest.approx(50 * 10, rel=0.2)  # all of the outage, nothing else
    outage_bins = [b for b in result.timeline if 10 <= b.start_s < 20]
    assert all(b.answered > 0 for b in outage_bins)


def test_degraded_tier_serves_only_requests_that_allow_it_when_full_tier_would_miss():
    full = _pool("full", {1: 20.0}, queue_limit_samples=None)
    cheap = _pool("cheap", {1: 2.0}, degraded=True, queue_limit_samples=None)
    arrivals = parse_traffic("poisson:120").arrivals(40, seed=7)
    none_allowed = simulate_serving([full, cheap], arrivals, HostModel(deadline_ms=60.0))
    half_allowed = simulate_serving([full, cheap], arrivals, HostModel(deadline_ms=60.0, degraded_share=0.5))
    assert none_allowed.pools[1].answered == 0 and none_allowed.refused > 0
    assert half_allowed.pools[1].answered > 0 and half_allowed.refused < none_allowed.refused


def test_host_cpu_stretches_service_and_overhead_adds_latency():
    arrivals = parse_traffic("poisson:50").arrivals(60, seed=8)
    plain = simulate_serving([_pool(cores_per_replica=1.0)], arrivals)
    host = HostModel(overhead_ms=3.0, host_cpu_ms_per_request=4.0, cores=1.0)
    shared = simulate_serving([_pool(cores_per_replica=1.0)], arrivals, host)
    # one core shared by the busy replica and the host's 50/s × 4 ms = 0.2 core: each batch × 1.2
    assert shared.pools[0].utilization == pytest.approx(plain.pools[0].utilization * 1.2, rel=0.05)
    assert shared.p50_ms > plain.p50_ms + 3.0
    roomy = simulate_serving([_pool(cores_per_replica=1.0)], arrivals, HostModel(host_cpu_ms_per_request=4.0, cores=2))
    assert roomy.pools[0].utilization == pytest.approx(plain.pools[0].utilization, rel=0.02)  # a free core


def test_timeline_shows_a_burst():
    arrivals = parse_traffic("burst:20,180,10,2").arrivals(40, seed=9)
    result = simulate_serving([_pool(queue_limit_samples=None)], arrivals, HostModel(deadline_ms=200), bin_s=1.0)
    in_burst = [b for b in result.timeline if (b.start_s % 10) >= 8]
    quiet = [b for b in result.timeline if (b.start_s % 10) < 7]
    assert min(b.refused for b in in_burst) > 0 and sum(b.refused for b in quiet) == 0
    assert np.mean([b.utilization for b in in_burst]) > 0.9 > np.mean([b.utilization for b in quiet])


def test_energy_and_cost_follow_the_answered_work():
    pool = _pool(j_per_inference=0.5, cost_per_hour=3.6)
    result = simulate_serving([pool], parse_traffic("constant:10").arrivals(100))
    assert result.energy_j == pytest.approx(0.5 * result.answered)
    assert result.cost_usd == pytest.approx(3.6 * result.window_s / 3600)
    assert result.cost_per_million == pytest.approx(result.cost_usd / result.answered * 1e6)


def test_bad_pools_are_named():
    with pytest.raises(QueueingError, match="role"):
        _pool(role="spare")
    with pytest.raises(QueueingError, match="unique"):
        simulate_serving([_pool(), _pool()], np.array([0.0, 1.0]))
    with pytest.raises(QueueingError, match="no arrivals"):
        simulate_serving([_pool()], np.array([]))


def test_jitter_sigma_reproduces_the_measured_tail():
    sigma = jitter_sigma_from(10.0, 13.0)
    draws = 10.0 * np.exp(np.random.default_rng(0).normal(0, sigma, 200_000))
    assert np.percentile(draws, 99) == pytest.approx(13.0, rel=0.01)


def test_service_stretch_scales_every_batch_and_is_reported_per_request():
    arrivals = parse_traffic("poisson:40").arrivals(60, seed=10)
    plain = simulate_serving([_pool()], arrivals)
    stretched = simulate_serving([_pool()], arrivals, HostModel(service_stretch=1.5))
    assert plain.pools[0].mean_service_ms == pytest.approx(10.0)
    assert stretched.pools[0].mean_service_ms == pytest.approx(15.0)
    assert stretched.pools[0].utilization == pytest.approx(plain.pools[0].utilization * 1.5, rel=0.02)
