"""The dynamic batcher: packing whole requests, padding, slicing back, priority queue, formation."""

import asyncio
import time

import numpy as np
import pytest

from hwfit.models import InputSpec, TensorSpec
from hwfit.serve.api import InferRequest, RequestOptions
from hwfit.serve.scheduler.batcher import (
    DynamicBatcher,
    Job,
    QueueFull,
    job_sizes,
    pack_batch,
    slice_outputs,
)

TOKENS = InputSpec(
    (TensorSpec("ids", "int64", ("B", "S"), fill="token_ids"), TensorSpec("mask", "int64", ("B", "S"), fill="mask")),
    {"S": 8},
)
FEATURES = InputSpec((TensorSpec("x", "float32", ("B", 3)),))


def make_job(inputs, spec=FEATURES, priority=0, seq=0, deadline=None, loop=None, hard=True):
    request = InferRequest("m", inputs, options=RequestOptions(priority=priority))
    samples, sizes = job_sizes(spec, inputs)
    if loop is None:  # a job that is never awaited: its future only needs some loop
        loop = asyncio.new_event_loop()
        loop.close()
    return Job(request, samples, sizes, loop.create_future(), seq, deadline, hard_deadline=hard)


def tokens(rows, length, start=1):
    ids = np.arange(start, start + rows * length, dtype=np.int64).reshape(rows, length)
    return {"ids": ids, "mask": np.ones((rows, length), dtype=np.int64)}


@pytest.mark.timeout(10)
def test_requests_are_packed_whole_and_sliced_back_in_order():
    jobs = [make_job({"x": np.full((n, 3), float(i), np.float32)}, seq=i) for i, n in enumerate((1, 3, 2))]
    packed = pack_batch(jobs, FEATURES)
    assert packed.size == 6 and packed.offsets == [0, 1, 4]
    assert packed.inputs["x"][:, 0].tolist() == [0, 1, 1, 1, 2, 2]
    outputs = {"y": packed.inputs["x"] * 10}
    parts = slice_outputs(outputs, packed, jobs, {})
    assert [part["y"].shape[0] for part in parts] == [1, 3, 2]
    for i, part in enumerate(parts):
        assert np.all(part["y"] == i * 10)


@pytest.mark.timeout(10)
def test_shorter_sequences_are_padded_with_zeros_masked_and_counted():
    short, long = make_job(tokens(1, 3), TOKENS, seq=0), make_job(tokens(2, 5, start=100), TOKENS, seq=1)
    packed = pack_batch([short, long], TOKENS)
    assert packed.inputs["ids"].shape == (3, 5)
    assert packed.inputs["ids"][0].tolist() == [1, 2, 3, 0, 0]
    assert packed.inputs["mask"][0].tolist() == [1, 1, 1, 0, 0]
    assert packed.padded_elements == {"ids": 2, "mask": 2}
    assert packed.padded_sizes == {"S": 5}


@pytest.mark.timeout(10)
def test_outputs_along_a_padded_axis_are_cut_back_to_each_request():
    short, long = make_job(tokens(1, 3), TOKENS, seq=0), make_job(tokens(1, 5), TOKENS, seq=1)
    packed = pack_batch([short, long], TOKENS)
    hidden = np.arange(2 * 5 * 4, dtype=np.float32).reshape(2, 5, 4)  # [B, S, H]
    pooled = np.ones((2, 4), np.float32)  # [B, H]
    parts = slice_outputs({"hidden": hidden, "pooled": pooled}, packed, [short, long], {"hidden": {1: "S"}})
    assert parts[0]["hidden"].shape == (1, 3, 4) and parts[1]["hidden"].shape == (1, 5, 4)
    assert np.array_equal(parts[0]["hidden"][0], hidden[0, :3])
    assert parts[0]["pooled"].shape == (1, 4)


@pytest.mark.timeout(10)
def test_a_single_request_goes_through_without_a_copy():
    inputs = {"x": np.ones((2, 3), np.float32)}
    packed = pack_batch([make_job(inputs)], FEATURES)
    assert packed.inputs["x"] is inputs["x"]


@pytest.mark.timeout(10)
def test_queue_orders_by_priority_then_arrival_and_sheds_the_lowest_when_full():
    async def scenario():
        loop = asyncio.get_running_loop()
        batcher = DynamicBatcher(max_batch_size=4, max_queue_delay_s=0.0, limit_samples=4)
        one = {"x": np.zeros((1, 3), np.float32)}
        low = [make_job(one, priority=0, seq=i, loop=loop) for i in range(4)]
        for job in low:
            assert batcher.admit(job, time.perf_counter()) == []
        with pytest.raises(QueueFull):  # same priority: nothing lower to shed
            batcher.admit(make_job(one, priority=0, seq=10, loop=loop), time.perf_counter())
        urgent = make_job(one, priority=1, seq=11, loop=loop)  # Triton's level 1, the highest
        shed = batcher.admit(urgent, time.perf_counter())
        assert shed == [low[-1]]  # the lowest priority, newest first
        assert batcher.queued_samples == 4
        batch = await batcher.next_batch()
        assert batch.jobs == [urgent] + low[:3]

    asyncio.run(scenario())


@pytest.mark.timeout(20)
def test_a_partial_batch_waits_the_max_queue_delay_and_a_full_one_goes_at_once():
    async def scenario():
        loop = asyncio.get_running_loop()
        batcher = DynamicBatcher(max_batch_size=4, max_queue_delay_s=0.05, limit_samples=64)
        one = {"x": np.zeros((1, 3), np.float32)}
        batcher.admit(make_job(one, seq=0, loop=loop), time.perf_counter())
        started = time.perf_counter()
        batch = await batcher.next_batch()
        waited = time.perf_counter() - started
        assert len(batch.jobs) == 1 and waited >= 0.045  # never before its delay
        assert waited < 10 * 0.05  # ... and not forever: a bound tied to the delay, not to this machine
        # A full batch does not wait for the delay: with a 5 s delay, one that comes back within
        # half of it cannot have waited (it would take 5 s), whatever the machine.
        patient = DynamicBatcher(max_batch_size=4, max_queue_delay_s=5.0, limit_samples=64)
        for seq in range(5):
            patient.admit(make_job(one, seq=seq + 1, loop=loop), time.perf_counter())
        started = time.perf_counter()
        batch = await patient.next_batch()
        assert len(batch.jobs) == 4 and time.perf_counter() - started < 5.0 / 2
        assert batch.jobs[0].formation_started is not None and batch.jobs[0].dispatched_at >= started
        assert patient.take_due(time.perf_counter()) is None  # the fifth alone is not due before its delay

    asyncio.run(scenario())


@pytest.mark.timeout(10)
def test_a_request_that_does_not_fit_waits_for_the_next_batch_instead_of_being_skipped():
    async def scenario():
        loop = asyncio.get_running_loop()
        batcher = DynamicBatcher(max_batch_size=4, max_queue_delay_s=0.0, limit_samples=64)
        sizes = (3, 2, 1)
        jobs = [make_job({"x": np.zeros((n, 3), np.float32)}, seq=i, loop=loop) for i, n in enumerate(sizes)]
        for job in jobs:
            batcher.admit(job, time.perf_counter())
        first = await batcher.next_batch()
        second = await batcher.next_batch()
        assert first.jobs == jobs[:1] and second.jobs == jobs[1:]

    asyncio.run(scenario())


@pytest.mark.timeout(10)
def test_requests_whose_client_deadline_passed_in_the_queue_are_set_aside_not_run():
    async def scenario():
        loop = asyncio.get_running_loop()
        batcher = DynamicBatcher(max_batch_size=4, max_queue_delay_s=0.0, limit_samples=64)
        one = {"x": np.zeros((1, 3), np.float32)}
        stale = make_job(one, seq=0, deadline=time.perf_counter() - 0.001, loop=loop)
        late_by_default = make_job(one, seq=1, deadline=time.perf_counter() - 0.001, loop=loop, hard=False)
        fresh = make_job(one, seq=2, loop=loop)
        for job in (stale, late_by_default, fresh):
            batcher.admit(job, time.perf_counter())
        batch = await batcher.next_batch()
        assert batch.jobs == [late_by_default, fresh] and batch.expired == [stale]

    asyncio.run(scenario())


@pytest.mark.timeout(10)
def test_stop_returns_none_once_the_queue_is_empty():
    async def scenario():
        loop = asyncio.get_running_loop()
        batcher = DynamicBatcher(max_batch_size=4, max_queue_delay_s=10.0, limit_samples=64)
        batcher.admit(make_job({"x": np.zeros((1, 3), np.float32)}, loop=loop), time.perf_counter())
        batcher.stop()  # draining: the queued job goes without waiting 10 s
        assert len((await asyncio.wait_for(batcher.next_batch(), 1.0)).jobs) == 1
        assert await asyncio.wait_for(batcher.next_batch(), 1.0) is None

    asyncio.run(scenario())


@pytest.mark.timeout(10)
def test_take_due_takes_a_full_or_overdue_batch_now_and_nothing_before():
    async def scenario():
        loop = asyncio.get_running_loop()
        batcher = DynamicBatcher(max_batch_size=2, max_queue_delay_s=0.05, limit_samples=64)
        one = {"x": np.zeros((1, 3), np.float32)}
        first = make_job(one, seq=0, loop=loop)
        now = time.perf_counter()
        batcher.admit(first, now)
        assert batcher.take_due(now) is None  # partial and within the delay
        overdue = batcher.take_due(now + 0.06)
        assert overdue.jobs == [first] and batcher.queued_samples == 0
        jobs = [make_job(one, seq=i + 1, loop=loop) for i in range(3)]
        for job in jobs:
            batcher.admit(job, now)
        full = batcher.take_due(now)
        assert full.jobs == jobs[:2] and batcher.queued_samples == 1 and len(batcher) == 1
        batcher.drain()
        assert batcher.take_due(now).jobs == jobs[2:]  # draining: no waiting
        assert batcher.take_due(now) is None and batcher.queued_samples == 0

    asyncio.run(scenario())


@pytest.mark.timeout(20)
def test_a_request_alone_in_an_idle_pool_goes_at_once_unless_another_is_expected():
    async def scenario():
        loop = asyncio.get_running_loop()
        one = {"x": np.zeros((1, 3), np.float32)}
        pool = {"sps": 0.0, "busy": 0}
        batcher = DynamicBatcher(4, 5.0, 64, arrival_rate=lambda now: pool["sps"], busy_replicas=lambda: pool["busy"])
        # nothing arriving and nothing running (one client at a time): a 5 s delay would be waited
        # for nobody, so the request goes at once
        batcher.admit(make_job(one, seq=0, loop=loop), time.perf_counter())
        started = time.perf_counter()
        batch = await batcher.next_batch()
        assert len(batch.jobs) == 1 and time.perf_counter() - started < 5.0 / 2
        now = time.perf_counter()
        batcher.admit(make_job(one, seq=1, loop=loop), now)
        assert batcher.take_due(now).jobs[0].seq == 1
        # another replica busy: the pool has other work and keeps Triton's rule, the whole delay
        pool["busy"] = 1
        batcher.admit(make_job(one, seq=2, loop=loop), now)
        assert batcher.take_due(now + 4.9) is None and batcher.take_due(now + 5.0).jobs[0].seq == 2
        # idle, but at 10 samples/s ~50 more are expected within 5 s: worth waiting for; the rule is
        # asked again at each look, so with 0.05 s left (0.5 expected) the lone request goes
        pool["busy"], pool["sps"] = 0, 10.0
        batcher.admit(make_job(one, seq=3, loop=loop), now)
        assert batcher.take_due(now + 1.0) is None and batcher.take_due(now + 4.0) is None
        assert batcher.take_due(now + 4.95).jobs[0].seq == 3
        # two queued: not alone
        pool["sps"] = 0.0
        batcher.admit(make_job(one, seq=4, loop=loop), now)
        batcher.admit(make_job(one, seq=5, loop=loop), now)
        assert batcher.take_due(now + 4.9) is None and len(batcher.take_due(now + 5.0).jobs) == 2

    asyncio.run(scenario())
