"""Overload: 5 s of open-loop arrivals at twice the capacity of an emulated pool. Every accepted
request is answered, refusals are immediate, accepted latency stays within twice the plan's p99,
and the queue never grows past its bound."""

import asyncio
import time

import numpy as np
import pytest

from hwfit.simulate import approximate_p99_ms
from hwfit.serve.api import InferRequest, Rejected
from hwfit.serve.scheduler.dispatcher import PlanDispatcher
from tests.serve.emulation import EmulatedPool, emulated_plan, write_small_onnx_model
from hwfit.serve.scheduler.inprocess import InProcess

CURVE_MS = {1: 20.0, 4: 40.0}
REPLICAS, MAX_BATCH, DELAY_MS = 2, 4, 2.0
CAPACITY_RPS = REPLICAS * MAX_BATCH / 0.040  # 200
PLANNED_RPS = 0.7 * CAPACITY_RPS
DURATION_S = 5.0


async def open_loop(dispatcher, rate_rps, duration_s):
    """Send at a fixed rate whatever happens to earlier requests; (outcome, seconds) per request."""
    results, peak_pending = [], 0
    x = np.ones((1, 4), np.float32)

    async def one():
        request = InferRequest("small", {"x": x})
        try:
            await dispatcher.infer(request)
            results.append(("answered", time.perf_counter() - request.arrived))
        except Rejected:
            results.append(("rejected", time.perf_counter() - request.arrived))
        except Exception as error:  # anything else is a lost request: the test reports it
            results.append((f"{type(error).__name__}: {error}", time.perf_counter() - request.arrived))

    tasks = []
    started = time.perf_counter()
    for index in range(int(rate_rps * duration_s)):
        delay = started + index / rate_rps - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one()))
        peak_pending = max(peak_pending, dispatcher.pending_requests)
    await asyncio.gather(*tasks)
    return results, peak_pending


@pytest.mark.timeout(90)
def test_twice_the_capacity_loses_nothing_accepted_and_keeps_accepted_latency(tmp_path):
    plan_p99_ms = approximate_p99_ms(CURVE_MS, REPLICAS, MAX_BATCH, DELAY_MS, PLANNED_RPS)
    pool = EmulatedPool("cpu-like", CURVE_MS, REPLICAS, MAX_BATCH, DELAY_MS, expected_p99_ms=plan_p99_ms)
    path = write_small_onnx_model(tmp_path / "small.onnx")
    plan = emulated_plan("small", str(path), [pool], latency_p99_ms=100.0, expected_p99_ms=plan_p99_ms)
    with InProcess(PlanDispatcher(plan)) as server:
        results, peak_pending = server.call(open_loop(server.dispatcher, 2 * CAPACITY_RPS, DURATION_S), 60)
        batcher = server.dispatcher.pools["cpu-like"].batcher
        peak_queued, queue_limit = batcher.peak_queued_samples, batcher.limit_samples

    lost = [outcome for outcome, _ in results if outcome not in ("answered", "rejected")]
    assert not lost, lost[:5]
    answered = sorted(s for outcome, s in results if outcome == "answered")
    refused = sorted(s for outcome, s in results if outcome == "rejected")
    assert len(answered) >= 0.6 * CAPACITY_RPS * DURATION_S  # kept serving near capacity
    assert len(refused) >= 0.25 * len(results)  # the excess was refused, not queued
    assert refused[int(0.99 * len(refused))] < 0.02  # refusals are immediate
    p99_answered_ms = answered[int(0.99 * len(answered))] * 1000
    assert p99_answered_ms <= 2 * plan_p99_ms, (p99_answered_ms, plan_p99_ms)
    assert peak_queued <= queue_limit
    assert peak_pending <= queue_limit + REPLICAS * MAX_BATCH

