"""Real `hwfit serve` front ends on 127.0.0.1 (free ports, a thread of the test process) for the
load generator to load: the tiny two-input ONNX model on ONNX Runtime, and an EMULATED slow pool
that refuses what it cannot answer within the plan's 100 ms."""

from __future__ import annotations

import pytest

from tests.serve.emulation import EmulatedPool, emulated_plan, write_small_onnx_model

# capacity 1 replica x 4 / 40 ms = 100 req/s; 20 ms for one request alone
SLOW_CURVE_MS = {1: 20.0, 4: 40.0}
SLOW_CAPACITY_RPS = 100.0


def _start(dispatcher):
    from hwfit.serve.frontend.server import ServerConfig, start_in_thread

    return start_in_thread(dispatcher, ServerConfig(http_port=0, grpc_port=0, max_request_bytes=1 << 20, drain_s=2.0))


@pytest.fixture(scope="package")
def tiny_server(tmp_path_factory):
    """ONNX Runtime on the tiny model: inputs x FP32 [-1, 4] and ids INT64 [-1, 4]."""
    from hwfit.core import Variant
    from hwfit.models import load_model
    from hwfit.serve.scheduler.direct import DirectDispatcher
    from tests.serve.conftest import write_tiny_onnx

    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    write_tiny_onnx(path)
    dispatcher = DirectDispatcher(load_model(str(path)), Variant("ort", "cpu", "fp32", 1, threads=1), max_batch_size=4)
    server = _start(dispatcher)
    yield server
    server.stop()


def slow_server(tmp_path, latency_p99_ms: float, curve_ms=None):
    """A plan of one EMULATED pool (SLOW_CURVE_MS unless given) serving the small model ("small")."""
    from hwfit.serve import PlanDispatcher

    curve = curve_ms or SLOW_CURVE_MS
    pool = EmulatedPool("slow", curve, replicas=1, max_batch_size=max(curve), max_queue_delay_ms=2.0)
    path = write_small_onnx_model(tmp_path / "small.onnx")
    plan = emulated_plan("small", str(path), [pool], latency_p99_ms=latency_p99_ms)
    return _start(PlanDispatcher(plan))
