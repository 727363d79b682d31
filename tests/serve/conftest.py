"""Front-end fixtures (codec/http/grpc/fuzz/server tests): a tiny real ONNX model served by a
DirectDispatcher on ONNX Runtime behind a real server on 127.0.0.1 with free ports.

The tiny model (two inputs, two outputs, a fixed random weight) loads in milliseconds, so the
protocol tests do not wait for the built-in CNN to train; test_direct runs the built-in `cnn`.
"""

from __future__ import annotations

import numpy as np
import pytest

TOKEN = "test-token-123"
TINY_MAX_BATCH = 4


def write_tiny_onnx(path) -> None:
    """y = (x + float(ids)) @ W + b   (B, 3);   energy = sum(x * x, axis=1)   (B,)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    weight = numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "W")
    bias = numpy_helper.from_array(np.array([0.5, -1.0, 2.0], dtype=np.float32), "b")
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    nodes = [
        helper.make_node("Cast", ["ids"], ["ids_f"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["x", "ids_f"], ["s"]),
        helper.make_node("MatMul", ["s", "W"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["y"]),
        helper.make_node("Mul", ["x", "x"], ["sq"]),
        helper.make_node("ReduceSum", ["sq", "axes"], ["energy"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 4]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("energy", TensorProto.FLOAT, ["batch"]),
        ],
        [weight, bias, axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from hwfit.models import load_model

    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    write_tiny_onnx(path)
    return load_model(str(path))


def _tiny_inputs(batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.standard_normal((batch, 4)).astype(np.float32),
        "ids": rng.integers(0, 5, size=(batch, 4)).astype(np.int64),
    }


@pytest.fixture(scope="session")
def tiny_inputs():
    """tiny_inputs(batch=2, seed=0) -> {"x": float32 (batch, 4), "ids": int64 (batch, 4)}."""
    return _tiny_inputs


@pytest.fixture(scope="module")
def tiny_server(tiny_model):
    """An open server (no token) for one test module; drained and stopped after it."""
    from hwfit.core import Variant
    from hwfit.serve.frontend.server import ServerConfig, start_in_thread
    from hwfit.serve.scheduler.direct import DirectDispatcher

    dispatcher = DirectDispatcher(
        tiny_model, Variant("ort", "cpu", "fp32", 1, threads=1), max_batch_size=TINY_MAX_BATCH
    )
    server = start_in_thread(dispatcher, ServerConfig(http_port=0, grpc_port=0, max_request_bytes=1 << 20, drain_s=2.0))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def reference(tiny_model):
    """Run the tiny model directly on ONNX Runtime (no server), for comparing outputs."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(tiny_model.onnx_path()), providers=["CPUExecutionProvider"])

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in session.get_outputs()]
        return dict(zip(names, session.run(names, inputs)))

    return run


def shed_low_priority_dispatcher(model):
    """A real DirectDispatcher with an admission rule: requests at priority level 9 or lower (Triton's
    numbering, 1 is the highest) are refused (Rejected, retry after 2 s), so the front ends' 429 /
    RESOURCE_EXHAUSTED path is exercised."""
    from hwfit.core import Variant
    from hwfit.serve.api import Rejected
    from hwfit.serve.scheduler.direct import DirectDispatcher

    class ShedLowPriority(DirectDispatcher):
        async def infer(self, request):
            if request.options.priority_level >= 9:
                raise Rejected(
                    f"priority level {request.options.priority_level} is 9 or lower: shed", retry_after_s=2.0
                )
            return await super().infer(request)

    return ShedLowPriority(model, Variant("ort", "cpu", "fp32", 1, threads=1), max_batch_size=TINY_MAX_BATCH)


@pytest.fixture(scope="module")
def guarded_server(tiny_model):
    """A server with a bearer token and the shed-level-9-and-lower admission rule."""
    from hwfit.serve.frontend.server import ServerConfig, start_in_thread

    config = ServerConfig(http_port=0, grpc_port=0, token=TOKEN, drain_s=2.0)
    server = start_in_thread(shed_low_priority_dispatcher(tiny_model), config)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token() -> str:
    """The bearer token guarded_server requires."""
    return TOKEN


@pytest.fixture(scope="session")
def tiny_max_batch() -> int:
    return TINY_MAX_BATCH
