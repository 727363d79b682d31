"""PlanDispatcher on emulated pools of known curves: metadata, routing, refusals, shedding, cache,
metrics and graceful drain; and padding on a real model (MiniLM on ONNX Runtime)."""

import time
from concurrent.futures import wait

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hwfit.serve.api import (
    BadRequest,
    InferRequest,
    ModelNotFound,
    Rejected,
    RequestOptions,
    Unavailable,
)
from hwfit.serve.scheduler.dispatcher import DispatcherConfig, PlanDispatcher
from hwfit.serve.scheduler.inprocess import InProcess
from hwfit.serve.scheduler.pools import PoolConfig
from tests.serve.emulation import EmulatedPool, emulated_plan, write_small_onnx_model

FAST = EmulatedPool("fast", {1: 10.0, 8: 20.0}, replicas=1, max_batch_size=8, max_queue_delay_ms=2.0)
SLOW = EmulatedPool("slow", {1: 40.0, 8: 80.0}, replicas=1, max_batch_size=8, max_queue_delay_ms=2.0, role="overflow")


def start_server(folder) -> InProcess:
    path = write_small_onnx_model(folder / "small.onnx")
    plan = emulated_plan("small", str(path), [FAST, SLOW], latency_p99_ms=2000.0)
    # no default deadline: the queue bound is the 2 batches per replica the overload test fills
    config = DispatcherConfig(cache_bytes=1 << 20, default_timeout_ms=0, pool=PoolConfig(queue_batches_per_replica=2))
    return InProcess(PlanDispatcher(plan, config=config))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = start_server(tmp_path_factory.mktemp("model"))
    yield running
    running.stop()


_rng = np.random.default_rng(0)


def request(samples=1, timeout_ms=None, priority=0, inputs=None):
    x = inputs if inputs is not None else _rng.random((samples, 4), dtype=np.float32)  # distinct: no cache hits
    return InferRequest("small", {"x": x}, options=RequestOptions(timeout_ms=timeout_ms, priority=priority))


def metric_values(text, name):
    """{frozenset(labels): value} of one sample name (the parser adds _total to Triton's counters)."""
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (name, name + "_total"):
                values[frozenset(sample.labels.items())] = sample.value
    return values


def total(text, name, **labels):
    return sum(v for key, v in metric_values(text, name).items() if set(labels.items()) <= key)


@pytest.mark.timeout(60)
def test_metadata_comes_from_the_model_and_plan(server):
    dispatcher = server.dispatcher
    (info,) = dispatcher.models()
    assert info.name == "small" and info.max_batch_size == 8 and "EMULATED" in info.platform
    assert [(t.name, t.datatype, t.shape) for t in info.inputs] == [("x", "FP32", (-1, 4))]
    assert [(t.name, t.datatype, t.shape) for t in info.outputs] == [("y", "FP32", (-1, 2))]
    assert dispatcher.live() and dispatcher.ready() and dispatcher.ready("small", "1")
    assert not dispatcher.ready("other")
    with pytest.raises(ModelNotFound, match="serves 'small'"):
        dispatcher.model_info("small", "7")
    assert all(summary.emulated and summary.up for summary in dispatcher.pool_summaries())


@pytest.mark.timeout(60)
def test_light_load_goes_to_the_faster_pool(server):
    responses = [server.infer(request()) for _ in range(8)]
    assert {r.pool for r in responses} == {"fast"}
    assert all(r.outputs["y"].shape == (1, 2) for r in responses)
    assert all(r.timings.compute_ms >= 10.0 for r in responses)  # never faster than the curve


@pytest.mark.timeout(60)
def test_a_burst_overflows_to_the_slower_pool_and_every_request_is_answered(server):
    futures = [server.infer_async(request()) for _ in range(24)]
    wait(futures, timeout=30)
    pools = [f.result().pool for f in futures]
    assert pools.count("fast") > pools.count("slow") > 0


@pytest.mark.timeout(60)
def test_a_deadline_no_pool_can_meet_is_rejected_at_once_with_the_reason(server):
    before = server.dispatcher.metrics_text()
    with pytest.raises(Rejected) as caught:
        server.infer(request(timeout_ms=5))  # fast needs 10 ms at least
    after = server.dispatcher.metrics_text()
    assert "no pool can answer within 5 ms; the earliest is" in str(caught.value)
    assert "on pool fast" in str(caught.value) and caught.value.retry_after_s > 0
    # at once: refused at admission, before any pool queued or ran it (on any machine)
    for name in ("nv_inference_exec_count", "nv_inference_count", "hwfit_batch_size_count"):
        assert total(after, name) == total(before, name), name
    assert (
        total(after, "hwfit_requests_total", outcome="rejected")
        == total(before, "hwfit_requests_total", outcome="rejected") + 1
    )


@pytest.mark.timeout(60)
def test_the_event_loops_lag_is_taken_off_the_deadline_and_named_in_the_refusal(server, monkeypatch):
    # the client's clock started before the server could read the request: with 25 ms of recent
    # loop lag, a 30 ms timeout leaves 5 ms, and the fast pool needs 10
    assert server.infer(request(timeout_ms=60)).pool == "fast"
    monkeypatch.setattr(server.dispatcher.loop_lag, "reserve_s", lambda: 0.025)
    with pytest.raises(Rejected) as caught:
        server.infer(request(timeout_ms=30))
    assert "no pool can answer within 30 ms (25.0 ms of it spent before the server could read" in str(caught.value)
    assert server.infer(request(timeout_ms=60)).pool == "fast"
    assert total(server.dispatcher.metrics_text(), "hwfit_event_loop_lag_seconds_count") > 0


@pytest.mark.timeout(60)
def test_malformed_and_oversized_requests_are_bad_requests(server):
    with pytest.raises(BadRequest, match="axis 1 must be 4"):
        server.infer(InferRequest("small", {"x": np.ones((1, 5), np.float32)}))
    with pytest.raises(BadRequest, match="takes 1 to 8 per request"):
        server.infer(request(samples=9))
    with pytest.raises(BadRequest, match="unknown output"):
        server.infer(InferRequest("small", {"x": np.ones((1, 4), np.float32)}, requested_outputs=["z"]))


@pytest.mark.timeout(60)
def test_under_overload_the_lowest_priority_is_shed_first(server):
    low = [server.infer_async(request()) for _ in range(60)]
    high = [server.infer_async(request(priority=1)) for _ in range(8)]  # Triton's level 1: the highest
    wait(low + high, timeout=30)
    assert all(f.exception() is None for f in high), [f.exception() for f in high]
    errors = [f.exception() for f in low if f.exception() is not None]
    assert errors and all(isinstance(e, Rejected) and e.retry_after_s for e in errors)
    assert any("shed by pool" in str(e) for e in errors)  # queued low-priority requests made room
    assert any("queue is full" in str(e) for e in errors)  # same-priority arrivals to full queues refused


@pytest.mark.timeout(60)
def test_a_repeated_request_is_answered_from_the_cache(server):
    x = np.full((1, 4), 0.25, np.float32)
    first = server.infer(request(inputs=x))
    second = server.infer(request(inputs=x))
    assert first.pool in ("fast", "slow") and second.pool == "cache"
    assert np.array_equal(first.outputs["y"], second.outputs["y"])


@pytest.mark.timeout(60)
def test_metrics_count_what_happened(tmp_path):
    """On a server of its own (not the module's, whose counts depend on which tests ran before):
    light load, a burst, an overload with priorities and a cache hit, each counted as it happened."""
    running = start_server(tmp_path)
    try:
        for _ in range(8):  # one at a time: each alone in its batch, on the faster pool
            running.infer(request())
        text = running.dispatcher.metrics_text()
        assert total(text, "hwfit_requests_total", outcome="success", pool="fast") == 8
        assert total(text, "nv_inference_request_success") == 8
        assert total(text, "nv_inference_exec_count") == total(text, "nv_inference_count") == 8
        assert total(text, "hwfit_request_compute_seconds_count", pool="fast") == 8

        burst = [running.infer_async(request()) for _ in range(24)]
        wait(burst, timeout=30)
        assert all(f.exception() is None for f in burst)
        text = running.dispatcher.metrics_text()
        successes = total(text, "hwfit_requests_total", outcome="success")
        assert successes == total(text, "nv_inference_request_success") == 32
        assert total(text, "hwfit_requests_total", outcome="success", pool="slow") >= 1  # it overflowed
        batches = total(text, "nv_inference_exec_count")
        assert 8 < batches < total(text, "nv_inference_count") == 32  # some batches held several requests
        assert (
            total(text, "hwfit_batch_size_count", pool="fast") + total(text, "hwfit_batch_size_count", pool="slow")
            == batches
        )

        low = [running.infer_async(request()) for _ in range(60)]
        high = [running.infer_async(request(priority=1)) for _ in range(8)]
        wait(low + high, timeout=30)
        refusals = sum(f.exception() is not None for f in low + high)
        text = running.dispatcher.metrics_text()
        shed = total(text, "hwfit_requests_total", outcome="shed")
        rejected = total(text, "hwfit_requests_total", outcome="rejected")
        assert shed >= 1 and rejected >= 1 and shed + rejected == refusals
        assert total(text, "nv_inference_request_failure", reason="REJECTED") == refusals
        assert total(text, "nv_inference_request_success") == 32 + 68 - refusals

        x = np.full((1, 4), 0.25, np.float32)
        assert running.infer(request(inputs=x)).pool != "cache"
        assert running.infer(request(inputs=x)).pool == "cache"
        text = running.dispatcher.metrics_text()
        assert total(text, "hwfit_cache_hits_total") == 1
        assert total(text, "hwfit_pool_info", pool="fast", emulated="true") == 1
        assert total(text, "hwfit_device_utilization_ratio", device="cpu") >= 0
    finally:
        running.stop()


@pytest.mark.timeout(60)
def test_a_degraded_tier_pool_serves_only_requests_that_allow_it(tmp_path):
    full = EmulatedPool("accurate", {1: 40.0, 8: 80.0}, max_batch_size=8)
    cheap = EmulatedPool("int8-cheap", {1: 5.0, 8: 10.0}, max_batch_size=8, role="overflow", tier="degraded")
    plan = emulated_plan("small", str(write_small_onnx_model(tmp_path / "small.onnx")), [full, cheap], 2000.0)
    assert [pool.tier for pool in plan.pools] == ["full", "degraded"]
    running = InProcess(PlanDispatcher(plan))
    try:

        def ask(timeout_ms, tier):
            return InferRequest(
                "small",
                {"x": _rng.random((1, 4), dtype=np.float32)},
                options=RequestOptions(timeout_ms=timeout_ms, tier=tier),
            )

        assert running.infer(ask(None, "degraded")).pool == "accurate"  # the full tier first when it is in time
        assert running.infer(ask(20, "degraded")).pool == "int8-cheap"  # only the degraded pool meets 20 ms
        with pytest.raises(Rejected, match="no pool can answer within 20 ms"):
            running.infer(ask(20, "full"))  # a full-tier request never lands on the degraded pool
        assert running.dispatcher.ready()
    finally:
        running.stop()


@pytest.mark.timeout(60)
def test_stop_answers_what_was_accepted_then_refuses(server):
    futures = [server.infer_async(request()) for _ in range(10)]
    time.sleep(0.05)  # accepted and queued
    server.call(server.dispatcher.stop(drain_s=10.0), timeout_s=30)
    assert all(f.result(timeout=1).outputs["y"].shape == (1, 2) for f in futures)
    with pytest.raises(Unavailable):
        server.infer(request())
    assert not server.dispatcher.ready() and not server.dispatcher.live()
    assert all(not slot.worker.alive for pool in server.dispatcher.pools.values() for slot in pool.slots)


def _minilm_plan(max_queue_delay_ms):
    from hwfit.plan import parse_plan

    return parse_plan(
        {
            "model": {"name": "minilm", "source": "minilm", "hash": "x"},
            "slo": {
                "latency_p99_ms": 5000,
                "throughput_rps": 1,
                "objective": "latency",
                "devices": {"cpu": {"count": 1}},
            },
            "feasible": True,
            "pools": [
                {
                    "name": "cpu",
                    "role": "primary",
                    "variant": "ort/cpu/fp32/b4/t1",
                    "backend": "ort",
                    "device": "cpu",
                    "precision": "fp32",
                    "threads": 1,
                    "max_batch_size": 4,
                    "max_queue_delay_ms": max_queue_delay_ms,
                    "service_ms": {1: 5.0, 4: 15.0},
                    "expected": {"rate_rps": 1, "capacity_rps": 200},
                }
            ],
            "fallback": ["cpu"],
            "search": {"grid_size": 1, "measured": 1, "reused": 0},
        }
    )


@pytest.mark.timeout(120)
def test_padded_batches_give_the_same_embeddings_as_unpadded_runs(minilm):
    from hwfit.backends import load_variant
    from hwfit.core import Variant

    inputs = minilm.sample_inputs(2)[0]  # real sentences, padded to 128 by the tokenizer
    lengths = [int(mask.sum()) for mask in inputs["attention_mask"]]
    requests = [{name: array[i : i + 1, : lengths[i]] for name, array in inputs.items()} for i in range(2)]
    assert requests[0]["input_ids"].shape != requests[1]["input_ids"].shape
    with load_variant(minilm, Variant("ort", "cpu", "fp32", 1, threads=1)) as runner:
        expected = [runner.run(r)["sentence_embedding"] for r in requests]
    with InProcess(PlanDispatcher(_minilm_plan(max_queue_delay_ms=300.0), model=minilm)) as server:
        info = server.dispatcher.models()[0]
        assert [(t.name, t.datatype, t.shape) for t in info.inputs] == [
            ("input_ids", "INT64", (-1, -1)),
            ("attention_mask", "INT64", (-1, -1)),
        ]
        assert [(t.name, t.datatype, t.shape) for t in info.outputs] == [("sentence_embedding", "FP32", (-1, 384))]
        # a lone request in an idle pool goes at once unless the pool's recent arrival rate expects company
        # within the delay (issue 20's rule): a few requests first, so the two below wait for each other
        for _ in range(6):
            server.infer_async(InferRequest("minilm", requests[0])).result(timeout=60)
        before = server.dispatcher.metrics_text()
        futures = [server.infer_async(InferRequest("minilm", r)) for r in requests]
        responses = [f.result(timeout=60) for f in futures]
        text = server.dispatcher.metrics_text()
    batches = total(text, "hwfit_batch_size_count") - total(before, "hwfit_batch_size_count")
    padded = total(text, "hwfit_padding_elements_total") - total(before, "hwfit_padding_elements_total")
    assert batches == 1  # both rode one batch...
    assert padded == 2 * abs(lengths[0] - lengths[1])  # ...padded
    for response, want in zip(responses, expected):
        assert response.outputs["sentence_embedding"].shape == (1, 384)
        assert np.allclose(response.outputs["sentence_embedding"], want, atol=1e-5)


def test_the_queue_bound_holds_what_the_pool_serves_within_the_deadline(tmp_path):
    from hwfit.serve.scheduler.pools import queue_limit_samples

    plan = emulated_plan("small", str(tmp_path / "unused.onnx"), [FAST], latency_p99_ms=2000.0)
    pool = plan.pools[0]  # 1 replica, max batch 8 in 20 ms: 400 samples/s
    assert queue_limit_samples(pool, PoolConfig(queue_batches_per_replica=2)) == 16  # no deadline: batches
    assert queue_limit_samples(pool, PoolConfig(queue_batches_per_replica=2, default_deadline_s=2.0)) == 800
    assert queue_limit_samples(pool, PoolConfig(queue_batches_per_replica=2, default_deadline_s=0.01)) == 16


@pytest.mark.timeout(60)
def test_a_due_batch_goes_to_the_worker_before_the_last_batchs_answers_are_encoded(tmp_path):
    """A replica that finishes a batch with a full one queued is fed at once; the answers of the
    batch it finished (encoded on the same event loop) wait for that, not the other way round."""
    pool = EmulatedPool("only", {1: 20.0, 8: 20.0}, replicas=1, max_batch_size=8, max_queue_delay_ms=2.0)
    plan = emulated_plan("small", str(write_small_onnx_model(tmp_path / "small.onnx")), [pool], 5000.0)
    running = InProcess(PlanDispatcher(plan, config=DispatcherConfig(default_timeout_ms=0)))
    encode_s = 0.02  # what encoding one answer costs the loop, here made large

    async def client(req):
        response = await running.dispatcher.infer(req)
        time.sleep(encode_s)  # on the loop, as the HTTP front end's encoding is
        encoded_at = time.perf_counter()
        dispatched_at = req.arrived + (response.timings.queue_ms + response.timings.batch_ms) / 1000
        return dispatched_at, encoded_at

    try:
        running.infer(request())  # warm
        futures = [running.submit(client(request())) for _ in range(24)]  # three full batches
        answers = [f.result(timeout=20) for f in futures]
        # the 2nd batch went to the replica before the 1st batch's answers were encoded: fed after
        # them it would wait for all 8 (at least 7 x 20 ms after the first was encoded); a margin of
        # half of that keeps a loaded machine's scheduling jitter from deciding the order
        second_batch_dispatched = max(dispatched for dispatched, _ in answers[8:16])
        first_batch_first_encoded = min(encoded for _, encoded in answers[:8])
        assert second_batch_dispatched < first_batch_first_encoded + 3.5 * encode_s
    finally:
        running.stop()
