"""DirectDispatcher: the built-in MiniLM on ONNX Runtime answers what its runner answers; metadata
comes from the spec and the runner's real outputs; one request at a time (so deadlines expire in
its queue); errors are ServeErrors; counters in its metrics. Timing uses the emulated backend."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from hwfit.backends import load_variant
from hwfit.core import Variant
from hwfit.serve.api import (
    BadRequest,
    DeadlineExceeded,
    InferRequest,
    ModelNotFound,
    RequestOptions,
    TensorInfo,
    Unavailable,
)
from hwfit.serve.scheduler.direct import DirectDispatcher

pytestmark = pytest.mark.timeout(60)

ORT = Variant("ort", "cpu", "fp32", 1, threads=1)


async def _serve(dispatcher, *requests):
    """Start, answer the requests concurrently (exceptions returned, not raised), stop."""
    await dispatcher.start()
    try:
        return await asyncio.gather(*(dispatcher.infer(r) for r in requests), return_exceptions=True)
    finally:
        await dispatcher.stop(drain_s=5.0)


def test_minilm_answers_what_its_runner_answers(minilm):
    dispatcher = DirectDispatcher(minilm, ORT, max_batch_size=8)
    info = dispatcher.info
    assert info.name == "minilm" and info.versions == ("1",) and info.max_batch_size == 8
    assert info.inputs == (TensorInfo("input_ids", "INT64", (-1, -1)), TensorInfo("attention_mask", "INT64", (-1, -1)))
    assert info.outputs == (TensorInfo("sentence_embedding", "FP32", (-1, 384)),)
    inputs, _ = minilm.sample_inputs(3)
    # the spec's rule that ModelInfo cannot express (inputs sharing a dim agree) comes back as a BadRequest
    ragged = {"input_ids": np.ones((1, 5), np.int64), "attention_mask": np.ones((1, 6), np.int64)}
    response, error = asyncio.run(
        _serve(dispatcher, InferRequest("minilm", inputs, id="a"), InferRequest("minilm", ragged))
    )
    with load_variant(minilm, ORT) as runner:
        expected = runner.run(inputs)["sentence_embedding"]
    got = response.outputs["sentence_embedding"]
    assert got.shape == (3, 384) and response.id == "a" and response.pool == ORT.key
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert isinstance(error, BadRequest) and "inputs sharing a dimension must agree" in str(error)


def _emulated(tiny_model, base_ms: float, per_sample_ms: float) -> DirectDispatcher:
    variant = Variant(
        "emulated", "emulated", "fp32", 1, knobs=(("base_ms", str(base_ms)), ("per_sample_ms", str(per_sample_ms)))
    )
    return DirectDispatcher(tiny_model, variant, max_batch_size=4)


def test_emulated_service_time_is_the_compute_time(tiny_model, tiny_inputs):
    dispatcher = _emulated(tiny_model, base_ms=30.0, per_sample_ms=10.0)
    assert "emulated" in dispatcher.info.platform
    requests = [InferRequest("tiny", tiny_inputs(batch=batch)) for batch in (1, 4) for _ in range(3)]
    responses = asyncio.run(_serve(dispatcher, *requests))
    compute_ms = {1: [r.timings.compute_ms for r in responses[:3]], 4: [r.timings.compute_ms for r in responses[3:]]}
    assert min(compute_ms[1]) >= 40.0 and min(compute_ms[4]) >= 70.0  # 30 + b x 10 ms: never faster
    # and the compute time follows the curve: 3 more samples take 30 ms more (what a busy machine
    # adds to every run is in both fastest runs and cancels), within a wide margin
    assert 24.0 < min(compute_ms[4]) - min(compute_ms[1]) < 36.0
    assert responses[-1].outputs["y"].shape == (4, 3)


def test_one_request_at_a_time_so_a_deadline_can_pass_in_the_queue(tiny_model, tiny_inputs):
    dispatcher = _emulated(tiny_model, base_ms=150.0, per_sample_ms=0.0)
    first = InferRequest("tiny", tiny_inputs(batch=1))
    patient = InferRequest("tiny", tiny_inputs(batch=1))
    hurried = InferRequest("tiny", tiny_inputs(batch=1), options=RequestOptions(timeout_ms=50.0))
    answers = asyncio.run(_serve(dispatcher, first, hurried, patient))
    assert isinstance(answers[1], DeadlineExceeded) and "50.0 ms" in str(answers[1])
    assert answers[2].timings.queue_ms >= 140.0  # waited for the first
    text = dispatcher.metrics_text()
    assert 'hwfit_inference_request_success_total{model="tiny"} 2.0' in text
    assert 'hwfit_inference_request_failure_total{model="tiny",reason="CANCELED"} 1.0' in text
    assert 'hwfit_inference_exec_count_total{model="tiny"} 2.0' in text


def test_unknown_model_or_version_and_lifecycle(tiny_model, tiny_inputs):
    dispatcher = _emulated(tiny_model, base_ms=1.0, per_sample_ms=0.0)
    with pytest.raises(ModelNotFound, match="unknown model 'other'"):
        dispatcher.model_info("other")
    with pytest.raises(ModelNotFound, match="has no version '2'"):
        dispatcher.model_info("tiny", "2")
    assert dispatcher.live() and not dispatcher.ready()

    async def lifecycle():
        with pytest.raises(Unavailable):
            await dispatcher.infer(InferRequest("tiny", tiny_inputs()))
        await dispatcher.start()
        assert dispatcher.ready() and dispatcher.ready("tiny", "1") and not dispatcher.ready("other")
        await dispatcher.stop(drain_s=1.0)
        assert not dispatcher.ready()
        with pytest.raises(Unavailable, match="not accepting"):
            await dispatcher.infer(InferRequest("tiny", tiny_inputs()))
        with pytest.raises(Unavailable, match="stopped"):
            await dispatcher.start()

    asyncio.run(lifecycle())
