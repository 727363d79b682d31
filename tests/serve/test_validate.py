"""The one validation of a request: hwfit.models' `InputSpec.validate`, reached on the serving path
through the dispatcher's `validate_request`. Each misfit is a BadRequest (HTTP 400, gRPC
INVALID_ARGUMENT) with the models layer's message naming the input, what it got and what the model
expects; a malformed request gets that same message over HTTP, over gRPC and from the model layer;
and the server validates a request once (its workers and runners run it unchecked)."""

from __future__ import annotations

import numpy as np
import pytest

from hwfit.core import InputSpecError, Variant
from hwfit.models import InputSpec, Model, TensorSpec
from hwfit.serve.api import BadRequest, InferRequest
from hwfit.serve.scheduler.validate import validate_request
from tests.serve.emulation import EmulatedPool, emulated_plan, write_small_onnx_model

pytestmark = pytest.mark.timeout(60)

ENC = Model(
    name="enc",
    source="test",
    kind="onnx",
    inputs=InputSpec(
        (TensorSpec("ids", "int64", ("B", "S")), TensorSpec("pixels", "float16", ("B", 3, 2))),
        default_sizes={"S": 5},
    ),
    output_names=("emb",),
    content_hash="test",
)
ENC_MAX_BATCH = 4


def _inputs(batch: int = 2, seq: int = 5) -> dict[str, np.ndarray]:
    return {"ids": np.zeros((batch, seq), np.int64), "pixels": np.ones((batch, 3, 2), np.float16)}


def _message(inputs: dict[str, np.ndarray], model: Model = ENC, outputs=None, max_batch=ENC_MAX_BATCH) -> str:
    with pytest.raises(BadRequest) as caught:
        validate_request(InferRequest(model.name, inputs, requested_outputs=outputs), model, max_batch)
    return str(caught.value)


# --- the serving check: the models layer's messages as BadRequests ---------------------------------


def test_a_fitting_request_passes():
    validate_request(InferRequest("enc", _inputs(batch=3, seq=7)), ENC, ENC_MAX_BATCH)
    validate_request(InferRequest("enc", _inputs(), requested_outputs=["emb"]), ENC, ENC_MAX_BATCH)


def test_unknown_and_missing_inputs():
    extra = {**_inputs(), "mask": np.zeros((2, 5), np.int64)}
    assert _message(extra) == "unknown input(s) ['mask']; the model's inputs are ['ids', 'pixels']"
    missing = {"ids": _inputs()["ids"]}
    assert _message(missing) == "missing input(s) ['pixels']; the model's inputs are ['ids', 'pixels']"
    misspelt = {"ids": _inputs()["ids"], "pixel": _inputs()["pixels"]}
    assert "unknown input(s) ['pixel'] and missing input(s) ['pixels']" in _message(misspelt)


def test_dtype_mismatch_names_both():
    inputs = {**_inputs(), "pixels": np.ones((2, 3, 2), np.float32)}
    assert _message(inputs) == "input 'pixels' has dtype float32; the model expects float16"


def test_rank_and_fixed_dims():
    inputs = {**_inputs(), "pixels": np.ones((2, 6), np.float16)}
    assert _message(inputs) == "input 'pixels' has shape [2, 6] (rank 2); the model expects rank 3: [B, 3, 2]"
    inputs = {**_inputs(), "pixels": np.ones((2, 4, 2), np.float16)}
    assert _message(inputs) == "input 'pixels' has shape [2, 4, 2]; axis 1 must be 3 (the model expects [B, 3, 2])"


def test_batch_must_agree_and_fit():
    inputs = {"ids": np.zeros((2, 5), np.int64), "pixels": np.ones((3, 3, 2), np.float16)}
    assert "input 'pixels' has B=3 on axis 0 but input 'ids' has B=2; inputs sharing a dimension must agree" in (
        _message(inputs)
    )
    assert "the inputs have batch size 5 (input 'ids' has B=5); this model takes 1 to 4 per request" in _message(
        _inputs(batch=5)
    )
    assert "batch size 0" in _message(_inputs(batch=0)) and "send at least one sample" in _message(_inputs(batch=0))


def test_a_dim_two_inputs_share_must_agree():
    # what KServe metadata (-1 for every dynamic dim) cannot say; the spec can
    other = InputSpec((TensorSpec("ids", "int64", ("B", "S")), TensorSpec("mask", "int64", ("B", "S"))))
    model = Model("text", "test", "onnx", other, ("emb",), "test")
    inputs = {"ids": np.zeros((1, 5), np.int64), "mask": np.zeros((1, 6), np.int64)}
    assert "input 'mask' has S=6 on axis 1 but input 'ids' has S=5" in _message(inputs, model)


def test_a_model_without_batching_checks_no_batch():
    fixed = Model("fixed", "test", "onnx", InputSpec((TensorSpec("x", "float32", (7, 2)),)), ("y",), "test")
    validate_request(InferRequest("fixed", {"x": np.zeros((7, 2), np.float32)}), fixed, None)
    assert "axis 0 must be 7" in _message({"x": np.zeros((8, 2), np.float32)}, fixed, max_batch=None)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_inputs_are_refused(bad):
    inputs = _inputs()
    inputs["pixels"][1, 2, 0] = bad
    message = _message(inputs)
    assert "input 'pixels' holds 1 non-finite value(s) (NaN or infinity), the first at index [1, 2, 0]" in message


def test_unknown_requested_output():
    expected = "unknown output(s) ['logits'] requested; the model's outputs are ['emb']"
    assert _message(_inputs(), outputs=["logits"]) == expected


# --- one message everywhere ----------------------------------------------------------------------------

# case -> (how the tiny model's good inputs are spoiled, what the message must say)
MALFORMED = {
    "unknown-and-missing": (
        lambda a: {"z": a["x"], "ids": a["ids"]},
        "unknown input(s) ['z'] and missing input(s) ['x']; the model's inputs are ['x', 'ids']",
    ),
    "dtype": (
        lambda a: {"x": a["x"], "ids": a["ids"].astype(np.int32)},
        "input 'ids' has dtype int32; the model expects int64",
    ),
    "fixed-dim": (lambda a: {"x": np.zeros((2, 5), np.float32), "ids": a["ids"]}, "axis 1 must be 4"),
    "rank": (
        lambda a: {"x": np.zeros((2, 2, 2), np.float32), "ids": a["ids"]},
        "input 'x' has shape [2, 2, 2] (rank 3); the model expects rank 2: [B, 4]",
    ),
    "batch-mismatch": (
        lambda a: {"x": a["x"][:1], "ids": a["ids"]},
        "input 'ids' has B=2 on axis 0 but input 'x' has B=1",
    ),
    "batch-too-big": (
        lambda a: {"x": np.zeros((5, 4), np.float32), "ids": np.zeros((5, 4), np.int64)},
        "this model takes 1 to 4 per request (max_batch_size 4)",
    ),
    "non-finite": (
        lambda a: {"x": np.full((2, 4), np.nan, np.float32), "ids": a["ids"]},
        "input 'x' holds 8 non-finite value(s)",
    ),
}
SERVING_LIMITS_ONLY = {"batch-too-big", "non-finite"}  # what a library caller of Runner.run is not held to


def _triton_inputs(module, arrays: dict[str, np.ndarray]) -> list:
    from tritonclient.utils import np_to_triton_dtype

    tensors = []
    for name, array in arrays.items():
        tensor = module.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    return tensors


def _infer(protocol: str, server, model: str, arrays: dict[str, np.ndarray]):
    """Infer with tritonclient's HTTP or gRPC client; returns the result or raises InferenceServerException."""
    if protocol == "http":
        import tritonclient.http as client_module

        client = client_module.InferenceServerClient(server.http_address, connection_timeout=10, network_timeout=10)
    else:
        import tritonclient.grpc as client_module

        client = client_module.InferenceServerClient(server.grpc_url)
    return client.infer(model, _triton_inputs(client_module, arrays))


def _refusal(protocol: str, server, model: str, arrays: dict[str, np.ndarray]) -> tuple[str, str]:
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException) as caught:
        _infer(protocol, server, model, arrays)
    return caught.value.status(), caught.value.message()


@pytest.fixture(scope="module")
def tiny_runner(tiny_model):
    from hwfit.backends import load_variant

    with load_variant(tiny_model, Variant("ort", "cpu", "fp32", 1, threads=1)) as runner:
        yield runner


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_request_gets_one_message_over_http_grpc_and_from_the_model(
    case, tiny_server, tiny_model, tiny_runner, tiny_inputs, tiny_max_batch
):
    spoil, says = MALFORMED[case]
    inputs = spoil(tiny_inputs(batch=2))
    with pytest.raises(InputSpecError) as caught:
        tiny_model.inputs.validate(inputs, max_batch_size=tiny_max_batch, finite=True)
    expected = str(caught.value)
    assert says in expected
    assert _refusal("http", tiny_server, "tiny", inputs) == ("400", expected)
    assert _refusal("grpc", tiny_server, "tiny", inputs) == ("StatusCode.INVALID_ARGUMENT", expected)
    if case in SERVING_LIMITS_ONLY:
        return
    with pytest.raises(InputSpecError) as from_runner:  # the library API, Runner.run, says the same
        tiny_runner.run(inputs)
    assert str(from_runner.value) == expected


# --- validated once ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plan_server(tmp_path_factory):
    """HTTP + gRPC over a PlanDispatcher: one emulated pool on a two-layer ONNX model (x: float32 [B, 4])."""
    from hwfit.serve.frontend.server import ServerConfig, start_in_thread
    from hwfit.serve.scheduler.dispatcher import DispatcherConfig, PlanDispatcher

    path = write_small_onnx_model(tmp_path_factory.mktemp("model") / "small.onnx")
    plan = emulated_plan("small", str(path), [EmulatedPool("only", {1: 1.0, 8: 2.0})], latency_p99_ms=5000.0)
    dispatcher = PlanDispatcher(plan, config=DispatcherConfig(default_timeout_ms=0))
    server = start_in_thread(dispatcher, ServerConfig(http_port=0, grpc_port=0, drain_s=2.0))
    yield server
    server.stop()


@pytest.fixture
def validations(monkeypatch) -> list[tuple[str, ...]]:
    """Every call of the one validator in this process, by the input names it was given."""
    calls: list[tuple[str, ...]] = []
    validate = InputSpec.validate

    def counted(self, inputs, *args, **kwargs):
        calls.append(tuple(inputs))
        return validate(self, inputs, *args, **kwargs)

    monkeypatch.setattr(InputSpec, "validate", counted)
    return calls


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_the_serving_path_validates_a_request_once(protocol, tiny_server, plan_server, tiny_inputs, validations):
    # DirectDispatcher: validated in infer, run unchecked on its thread
    assert _infer(protocol, tiny_server, "tiny", tiny_inputs(batch=2)).as_numpy("y").shape == (2, 3)
    assert validations == [("x", "ids")]
    status, _ = _refusal(protocol, tiny_server, "tiny", {**tiny_inputs(batch=2), "x": np.zeros((2, 5), np.float32)})
    assert status in ("400", "StatusCode.INVALID_ARGUMENT") and len(validations) == 2
    # PlanDispatcher: validated where it makes the job; the worker runs the batch unchecked
    validations.clear()
    assert _infer(protocol, plan_server, "small", {"x": np.ones((3, 4), np.float32)}).as_numpy("y").shape == (3, 2)
    assert validations == [("x",)]
    status, message = _refusal(protocol, plan_server, "small", {"x": np.ones((3, 5), np.float32)})
    assert status in ("400", "StatusCode.INVALID_ARGUMENT") and len(validations) == 2
    assert message == "input 'x' has shape [3, 5]; axis 1 must be 4 (the model expects [B, 4])"
