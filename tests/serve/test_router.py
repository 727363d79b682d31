"""The predicted-completion router: predictions from the service curve, the choice, and refusals."""

import time
from dataclasses import dataclass, field

import pytest

from hwfit.serve.api import Rejected, Unavailable
from hwfit.serve.scheduler.router import Lateness, OnlineCurve, Router, RouteRequest
from hwfit.simulate import ArrivalRate, PoolLoad, predict_completion_s


@dataclass
class PoolState:
    """A pool as the router sees it: its plan figures and its load right now."""

    name: str
    curve_ms: dict
    role: str = "primary"
    degraded: bool = False
    max_batch_size: int = 8
    replicas: int = 1
    queued_samples: int = 0
    delay_s: float = 0.002
    is_up: bool = True
    queue_limit: int = 1000
    late_s: float = 0.0
    curve: OnlineCurve = field(init=False)

    def __post_init__(self):
        self.curve = OnlineCurve(self.curve_ms)

    @property
    def up(self):
        return self.is_up

    @property
    def down_reason(self):
        return None if self.is_up else "device marked down"

    def load(self, priority):
        return PoolLoad(self.replicas, (), None, self.queued_samples, self.max_batch_size, self.delay_s)

    def predict_s(self, batch_size):
        return self.curve.predict_s(batch_size)

    def has_room(self, samples, priority):
        return self.queued_samples + samples <= self.queue_limit

    def lateness_s(self):
        return self.late_s

    def queue_text(self):
        return f"{self.queued_samples}/{self.queue_limit} samples queued"


def request(samples=1, timeout_ms=None, tier="full", priority=0):
    now = time.perf_counter()
    return RouteRequest(samples, priority, tier, now, None if timeout_ms is None else now + timeout_ms / 1000)


def curve_s(points):
    curve = OnlineCurve(points)
    return curve.predict_s


@pytest.mark.timeout(10)
def test_prediction_counts_batches_ahead_per_replica_formation_and_own_service():
    service = curve_s({1: 10.0, 8: 24.0})
    idle = PoolLoad(1, (), None, 0, 8, 0.002)
    assert predict_completion_s(idle, 1, service) == pytest.approx(0.010)  # alone, nobody coming: at once
    busy_rate = PoolLoad(1, (), None, 0, 8, 0.002, arrival_rate_sps=2000.0)  # 4 expected within the delay
    assert predict_completion_s(busy_rate, 1, service) == pytest.approx(0.002 + service(5))  # waits; they join
    other_work = PoolLoad(2, (0.050,), None, 0, 8, 0.002)  # the other replica is busy: Triton's rule
    assert predict_completion_s(other_work, 1, service) == pytest.approx(0.002 + 0.010)  # waits the delay
    full = PoolLoad(1, (), None, 0, 8, 0.002)
    assert predict_completion_s(full, 8, service) == pytest.approx(0.024)  # a full batch does not wait
    backlog = PoolLoad(1, (0.005,), None, 16, 8, 0.002)  # one batch running 5 ms more, 2 full batches queued
    assert predict_completion_s(backlog, 1, service) == pytest.approx(0.005 + 2 * 0.024 + 0.010)
    two_replicas = PoolLoad(2, (0.005,), None, 16, 8, 0.002)
    # batches ahead go to the earliest-free replica: idle one takes batch 1 (0..24), busy one batch 2 (5..29)
    assert predict_completion_s(two_replicas, 1, service) == pytest.approx(0.024 + 0.010)


@pytest.mark.timeout(10)
def test_a_pool_with_no_ready_replica_is_predicted_after_its_restart_or_never():
    service = curve_s({1: 10.0})
    restarting = PoolLoad(0, (), 0.5, 0, 8, 0.0)
    assert predict_completion_s(restarting, 1, service) == pytest.approx(0.51)
    assert predict_completion_s(PoolLoad(0, (), None, 0, 8, 0.0), 1, service) == float("inf")


@pytest.mark.timeout(10)
def test_observed_service_times_correct_the_plan_curve_by_ewma():
    curve = OnlineCurve({1: 10.0, 8: 20.0}, alpha=0.5)
    assert curve.predict_s(8) == pytest.approx(0.020)
    curve.observe(8, 0.040)  # twice as slow as planned
    assert curve.predict_s(8) == pytest.approx(0.040)
    curve.observe(8, 0.020)
    assert curve.ratio(8) == pytest.approx(1.5)
    assert curve.ratio(4) == pytest.approx(1.5)  # never-seen sizes follow the pool-wide correction


@pytest.mark.timeout(10)
def test_the_faster_pool_gets_the_request_until_its_backlog_makes_the_slower_one_earlier():
    fast = PoolState("fast", {1: 5.0, 8: 10.0})
    slow = PoolState("slow", {1: 20.0, 8: 40.0}, role="overflow")
    router = Router([fast, slow], ["fast", "slow"])
    assert router.choose(request(), time.perf_counter()).pool is fast
    fast.queued_samples = 64  # 8 full batches = 80 ms ahead
    assert router.choose(request(), time.perf_counter()).pool is slow


@pytest.mark.timeout(10)
def test_a_deadline_no_pool_can_meet_is_rejected_at_once_with_the_earliest_pool_named():
    fast = PoolState("fast", {1: 50.0, 8: 100.0}, queued_samples=16)
    router = Router([fast], ["fast"])
    with pytest.raises(Rejected) as caught:
        router.choose(request(timeout_ms=20), time.perf_counter())
    message = str(caught.value)
    assert "no pool can answer within 20 ms" in message and "on pool fast" in message
    earliest_ms = float(message.split("the earliest is ")[1].split(" ms")[0])
    assert earliest_ms == pytest.approx(2 * 100 + 50 + 2, abs=3)
    assert caught.value.retry_after_s >= 0.2


@pytest.mark.timeout(10)
def test_fallback_pools_serve_only_when_every_primary_is_down_and_in_chain_order():
    primary = PoolState("gpu", {1: 2.0})
    spare_fast = PoolState("spare-fast", {1: 1.0}, role="fallback")
    spare_slow = PoolState("spare-slow", {1: 9.0}, role="fallback")
    router = Router([primary, spare_fast, spare_slow], ["gpu", "spare-slow", "spare-fast"])
    assert router.choose(request(), time.perf_counter()).pool is primary  # fallbacks idle while it is up
    primary.is_up = False
    assert router.choose(request(), time.perf_counter()).pool is spare_slow  # first in the chain...
    spare_slow.queued_samples = 80
    assert router.choose(request(timeout_ms=50), time.perf_counter()).pool is spare_fast  # ...unless too late
    spare_fast.is_up = spare_slow.is_up = False
    with pytest.raises(Unavailable, match="gpu: device marked down"):
        router.choose(request(), time.perf_counter())


@pytest.mark.timeout(10)
def test_degraded_pools_take_only_degraded_tier_requests_that_no_full_pool_can_meet():
    full = PoolState("full", {1: 80.0})
    cheap = PoolState("degraded-int8", {1: 5.0}, degraded=True)
    router = Router([full, cheap], ["full"])
    assert router.choose(request(tier="degraded"), time.perf_counter()).pool is full  # full tier first
    with pytest.raises(Rejected):
        router.choose(request(timeout_ms=30), time.perf_counter())
    assert router.choose(request(timeout_ms=30, tier="degraded"), time.perf_counter()).pool is cheap


@pytest.mark.timeout(10)
def test_pools_too_small_for_the_request_are_not_considered():
    small = PoolState("small", {1: 1.0}, max_batch_size=2)
    big = PoolState("big", {1: 10.0, 16: 40.0}, max_batch_size=16)
    router = Router([small, big], ["small", "big"])
    assert router.choose(request(samples=4), time.perf_counter()).pool is big


@pytest.mark.timeout(10)
def test_a_pool_with_a_full_queue_is_passed_over_and_all_full_is_a_rejection():
    fast = PoolState("fast", {1: 5.0}, queued_samples=16, queue_limit=16)
    slow = PoolState("slow", {1: 50.0}, role="overflow")
    router = Router([fast, slow], ["fast", "slow"])
    assert router.choose(request(), time.perf_counter()).pool is slow
    slow.queued_samples = slow.queue_limit = 8
    with pytest.raises(Rejected, match="every pool's queue is full .fast: 16/16 samples queued, slow: 8/8"):
        router.choose(request(), time.perf_counter())


@pytest.mark.timeout(10)
def test_requests_arriving_before_a_batch_starts_fill_it_and_lengthen_its_service():
    service = curve_s({1: 10.0, 8: 24.0})
    quiet = PoolLoad(1, (0.020,), None, 0, 8, 0.002, arrival_rate_sps=0.0)
    busy = PoolLoad(1, (0.020,), None, 0, 8, 0.002, arrival_rate_sps=400.0)  # 8 more arrive in 20 ms
    assert predict_completion_s(quiet, 1, service) == pytest.approx(0.020 + 0.010)
    assert predict_completion_s(busy, 1, service) == pytest.approx(0.020 + 0.024)


@pytest.mark.timeout(10)
def test_arrival_rate_decays_and_lateness_is_a_high_percentile_of_misses():
    rate = ArrivalRate(tau_s=1.0)
    for i in range(100):
        rate.add(1, now=i * 0.01)  # 100 samples/s for 1 s
    assert 50 < rate.rate(1.0) < 100
    assert rate.rate(5.0) < rate.rate(1.0) * 0.05
    lateness = Lateness(window=100, quantile=0.95, refresh_every=10)
    for i in range(100):
        lateness.add(i / 1000.0)  # late by 0..99 ms
    assert lateness.allowance_s() == pytest.approx(0.095, abs=0.002)  # refreshed every 10 answers
    early = Lateness()
    early.add(-0.005)
    assert early.allowance_s() == 0.0  # early answers never shorten a prediction


@pytest.mark.timeout(10)
def test_a_pool_that_answers_late_is_held_to_its_deadline_with_its_lateness():
    pool = PoolState("p", {1: 10.0}, delay_s=0.0)
    router = Router([pool], ["p"])
    assert router.choose(request(timeout_ms=15), time.perf_counter()).pool is pool
    pool.late_s = 0.010  # it has been answering 10 ms later than predicted
    with pytest.raises(Rejected):
        router.choose(request(timeout_ms=15), time.perf_counter())


def test_what_a_burst_taught_a_pool_fades_when_it_goes_quiet_and_does_not_come_back():
    # a pool that refuses everything after a burst learns nothing new: its corrections must fade,
    # or it would refuse forever; and one fresh answer must not revive the burst's figures
    curve = OnlineCurve({1: 10.0}, alpha=0.5, stale_tau_s=0.05)
    lateness = Lateness(refresh_every=1, stale_tau_s=0.05)
    for _ in range(20):
        curve.observe(1, 0.100)  # 10x the plan's curve under the burst
        lateness.add(0.150)
    assert curve.ratio(1) == pytest.approx(10.0, rel=0.01) and lateness.allowance_s() == pytest.approx(0.150)
    time.sleep(0.4)  # quiet: nothing answered
    assert curve.ratio(1) < 1.2 and lateness.allowance_s() < 0.02
    curve.observe(1, 0.011)
    lateness.add(0.001)
    assert curve.ratio(1) < 1.2 and lateness.allowance_s() == pytest.approx(0.001)


def test_a_long_queue_is_predicted_as_batch_by_batch_list_scheduling_would():
    """The closed form for many equal batches ahead gives the replicas' free times that pushing
    each batch onto the earliest free replica gives."""
    import heapq
    import random

    from hwfit.simulate.prediction import _after_equal_batches

    def one_by_one(free, count, batch_s):
        free = list(free)
        heapq.heapify(free)
        for _ in range(count):
            heapq.heappush(free, heapq.heappop(free) + batch_s)
        return sorted(free)

    rng = random.Random(0)
    for _ in range(3000):
        free = [rng.choice([0.0, rng.random() * 0.3]) for _ in range(rng.randint(1, 5))]
        heapq.heapify(free)
        count, batch_s = rng.randint(0, 80), rng.choice([0.001, 0.05, rng.random() * 0.1 + 1e-4])
        assert sorted(_after_equal_batches(list(free), count, batch_s)) == pytest.approx(
            one_by_one(free, count, batch_s)
        )
