"""Validation against model metadata: each mismatch is a BadRequest naming the tensor, what it got
and what the model expects; a request that fits passes and its batch size is returned."""

from __future__ import annotations

import numpy as np
import pytest

from hwfit.serve.api import BadRequest, InferRequest, ModelInfo, TensorInfo
from hwfit.serve.frontend.validate import validate_request

pytestmark = pytest.mark.timeout(30)

INFO = ModelInfo(
    name="enc",
    versions=("1",),
    platform="test",
    inputs=(TensorInfo("ids", "INT64", (-1, -1)), TensorInfo("pixels", "FP16", (-1, 3, 2))),
    outputs=(TensorInfo("emb", "FP32", (-1, 8)),),
    max_batch_size=4,
)


def _inputs(batch: int = 2, seq: int = 5) -> dict[str, np.ndarray]:
    return {"ids": np.zeros((batch, seq), np.int64), "pixels": np.ones((batch, 3, 2), np.float16)}


def _message(inputs: dict[str, np.ndarray], info: ModelInfo = INFO, outputs=None) -> str:
    with pytest.raises(BadRequest) as caught:
        validate_request(InferRequest(info.name, inputs, requested_outputs=outputs), info)
    return str(caught.value)


def test_a_fitting_request_passes_with_its_batch_size():
    assert validate_request(InferRequest("enc", _inputs(batch=3, seq=7)), INFO) == 3
    assert validate_request(InferRequest("enc", _inputs(), requested_outputs=["emb"]), INFO) == 2


def test_unknown_and_missing_inputs():
    extra = {**_inputs(), "mask": np.zeros((2, 5), np.int64)}
    assert "unknown input(s) ['mask'] for model 'enc'; its inputs are ['ids', 'pixels']" in _message(extra)
    missing = {"ids": _inputs()["ids"]}
    assert "missing input(s) ['pixels'] for model 'enc'" in _message(missing)


def test_datatype_mismatch_names_both():
    inputs = {**_inputs(), "pixels": np.ones((2, 3, 2), np.float32)}
    assert "input 'pixels' has datatype FP32; the model expects FP16" in _message(inputs)


def test_rank_and_fixed_dims():
    inputs = {**_inputs(), "pixels": np.ones((2, 6), np.float16)}
    assert "input 'pixels' has shape [2, 6] (rank 2); the model expects rank 3: [-1, 3, 2]" in _message(inputs)
    inputs = {**_inputs(), "pixels": np.ones((2, 4, 2), np.float16)}
    assert "input 'pixels' has shape [2, 4, 2]; axis 1 must be 3" in _message(inputs)


def test_batch_must_agree_and_fit():
    inputs = {"ids": np.zeros((2, 5), np.int64), "pixels": np.ones((3, 3, 2), np.float16)}
    assert "inputs disagree on the batch size (axis 0): {'ids': 2, 'pixels': 3}" in _message(inputs)
    assert "batch size 5 (axis 0 of every input) exceeds model 'enc's max_batch_size 4" in _message(_inputs(batch=5))
    assert "batch size (axis 0 of every input) is 0" in _message(_inputs(batch=0))


def test_a_model_without_batching_checks_no_batch():
    info = ModelInfo("fixed", ("1",), "test", (TensorInfo("x", "FP32", (7, 2)),), (), max_batch_size=0)
    assert validate_request(InferRequest("fixed", {"x": np.zeros((7, 2), np.float32)}), info) is None
    assert "axis 0 must be 7" in _message({"x": np.zeros((8, 2), np.float32)}, info)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_inputs_are_refused(bad):
    inputs = _inputs()
    inputs["pixels"][1, 2, 0] = bad
    message = _message(inputs)
    assert "input 'pixels' holds 1 non-finite value(s) (NaN or infinity), the first at index [1, 2, 0]" in message


def test_unknown_requested_output():
    assert "unknown output(s) ['logits'] requested from model 'enc'; its outputs are ['emb']" in _message(
        _inputs(), outputs=["logits"]
    )
