"""Overload: open-loop arrivals at twice the capacity of an emulated pool. Every request is answered
or refused (none lost), the excess is refused at admission rather than queued, refusals come back
before answers do, and the queue never grows past its bound. Each holds on any machine: how fast
this machine serves (answered near capacity, refusal and accepted latency) is bench/serve_overload.py's."""

import pytest

from hwfit.serve.scheduler.dispatcher import PlanDispatcher
from hwfit.serve.scheduler.inprocess import InProcess
from hwfit.simulate import approximate_p99_ms
from tests.serve.emulation import EmulatedPool, emulated_plan, open_loop, write_small_onnx_model

CURVE_MS = {1: 20.0, 4: 40.0}
REPLICAS, MAX_BATCH, DELAY_MS = 2, 4, 2.0
CAPACITY_RPS = REPLICAS * MAX_BATCH / 0.040  # 200: the emulated device is never faster than its curve
PLANNED_RPS = 0.7 * CAPACITY_RPS
DURATION_S = 3.0


@pytest.mark.timeout(90)
def test_twice_the_capacity_loses_nothing_and_refuses_the_excess_at_admission(tmp_path):
    plan_p99_ms = approximate_p99_ms(CURVE_MS, REPLICAS, MAX_BATCH, DELAY_MS, PLANNED_RPS)
    pool = EmulatedPool("cpu-like", CURVE_MS, REPLICAS, MAX_BATCH, DELAY_MS, expected_p99_ms=plan_p99_ms)
    path = write_small_onnx_model(tmp_path / "small.onnx")
    plan = emulated_plan("small", str(path), [pool], latency_p99_ms=100.0, expected_p99_ms=plan_p99_ms)
    with InProcess(PlanDispatcher(plan)) as server:
        results, peak_pending, elapsed_s = server.call(open_loop(server.dispatcher, 2 * CAPACITY_RPS, DURATION_S), 60)
        batcher = server.dispatcher.pools["cpu-like"].batcher
        peak_queued, queue_limit = batcher.peak_queued_samples, batcher.limit_samples

    lost = [outcome for outcome, _, _ in results if outcome not in ("answered", "rejected")]
    assert not lost, lost[:5]
    answered = sorted(s for outcome, s, _ in results if outcome == "answered")
    refused = sorted(s for outcome, s, _ in results if outcome == "rejected")
    # The curve caps what can be answered while the arrivals last, on any machine: capacity x time,
    # plus what the queue and the replicas held at the end. The rest must have been refused.
    most_answerable = CAPACITY_RPS * elapsed_s + queue_limit + REPLICAS * MAX_BATCH
    assert answered and len(answered) <= most_answerable
    assert len(refused) >= len(results) - most_answerable  # the excess was refused, not queued
    # refused at admission (no pool could answer in time, or the queue was full), never shed later
    messages = [message for outcome, _, message in results if outcome == "rejected"]
    admission = ("no pool can answer within", "pool cpu-like: the queue holds")
    assert all(message.startswith(admission) for message in messages), messages[:3]
    # refused before served: a refusal waits for no service, an answer for at least the curve's 20 ms
    assert answered[0] >= CURVE_MS[1] / 1000
    assert refused[len(refused) // 2] < answered[len(answered) // 2]
    assert peak_queued <= queue_limit
    assert peak_pending <= queue_limit + REPLICAS * MAX_BATCH
