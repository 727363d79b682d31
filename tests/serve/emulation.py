"""Plans on emulated devices (service time follows a given curve), for trying routing, batching and
fault handling without the hardware; every pool is labelled EMULATED wherever it is shown. Also a
two-layer ONNX model small enough to load in a blink, for the emulated pools to stand on."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwfit.plan import Plan, parse_plan
from hwfit.serve import InferRequest, Rejected
from hwfit.simulate import capacity_rps


@dataclass(frozen=True)
class EmulatedPool:
    """One pool on an emulated device with a latency curve {batch size: ms}."""

    name: str
    curve_ms: dict[int, float]
    replicas: int = 1
    max_batch_size: int = 8
    max_queue_delay_ms: float = 2.0
    role: str = "primary"
    expected_p99_ms: float | None = None
    tier: str = "full"  # degraded: serves only requests that allow the degraded tier

    @property
    def curve_knob(self) -> str:
        return ",".join(f"{batch}:{ms:g}" for batch, ms in sorted(self.curve_ms.items()))

    @property
    def variant_key(self) -> str:
        return f"emulated/emulated:{self.name}/fp32/b{self.max_batch_size}/curve={self.curve_knob}"

    def to_plan_pool(self) -> dict:
        capacity = capacity_rps(self.curve_ms, self.replicas, self.max_batch_size)
        return {
            "name": self.name,
            "role": self.role,
            "tier": self.tier,
            "variant": self.variant_key,
            "backend": "emulated",
            "device": f"emulated:{self.name}",
            "precision": "fp32",
            "threads": None,
            "knobs": {},
            "devices": 1,
            "replicas_per_device": self.replicas,
            "max_batch_size": self.max_batch_size,
            "max_queue_delay_ms": self.max_queue_delay_ms,
            "service_ms": dict(self.curve_ms),
            "expected": {
                "rate_rps": 0.0,
                "capacity_rps": capacity,
                "p99_ms": self.expected_p99_ms,
                "how": "EMULATED device: the given curve",
            },
        }


def emulated_plan(
    model_name: str,
    model_source: str,
    pools: list[EmulatedPool],
    latency_p99_ms: float,
    fallback: list[str] | None = None,
    expected_p99_ms: float | None = None,
) -> Plan:
    """A plan serving `model_source` on emulated pools; `fallback` defaults to the pools in order."""
    capacity = sum(
        pool.to_plan_pool()["expected"]["capacity_rps"]
        for pool in pools
        if pool.role in ("primary", "overflow") and pool.tier == "full"
    )
    data = {
        "model": {"name": model_name, "source": model_source, "hash": "emulated"},
        "slo": {
            "latency_p99_ms": latency_p99_ms,
            "throughput_rps": max(capacity * 0.5, 1e-3),
            "objective": "latency",
            "devices": {"emulated": {"count": len(pools)}},
        },
        "feasible": any(pool.role == "primary" for pool in pools),
        "pools": [pool.to_plan_pool() for pool in pools],
        "fallback": fallback if fallback is not None else [pool.name for pool in pools],
        "expected": {"rate_rps": 0.0, "capacity_rps": capacity, "p99_ms": expected_p99_ms, "how": "EMULATED devices"},
        "answer": "EMULATED pools: " + ", ".join(f"{p.name} ({p.curve_knob} ms)" for p in pools),
        "search": {"grid_size": 0, "measured": 0, "reused": 0, "method": "emulated"},
    }
    return parse_plan(data, source="<emulated plan>")


def write_small_onnx_model(path: str | Path, features: int = 4, outputs: int = 2) -> Path:
    """y = relu(x @ W) with x float32 [B, features]: loads and shape-infers in milliseconds."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.arange(features * outputs, dtype=np.float32).reshape(features, outputs) / (features * outputs)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Relu", ["xw"], ["y"])],
        "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", outputs])],
        [numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = Path(path)
    onnx.save(model, str(path))
    return path


async def open_loop(dispatcher, rate_rps: float, duration_s: float):
    """Send requests for the small model (`write_small_onnx_model`) at a fixed rate, whatever happens
    to earlier ones, straight to `dispatcher` (no HTTP): (outcome, seconds, message) per request
    (outcome "answered", "rejected" or the error that lost it; seconds from arrival), the peak of
    requests pending, and the seconds the arrivals took."""
    results, peak_pending = [], 0
    x = np.ones((1, 4), np.float32)

    async def one():
        request = InferRequest("small", {"x": x})
        try:
            await dispatcher.infer(request)
            results.append(("answered", time.perf_counter() - request.arrived, ""))
        except Rejected as refusal:
            results.append(("rejected", time.perf_counter() - request.arrived, str(refusal)))
        except Exception as error:  # anything else is a lost request: the test reports it
            results.append((f"{type(error).__name__}: {error}", time.perf_counter() - request.arrived, ""))

    tasks = []
    started = time.perf_counter()
    for index in range(int(rate_rps * duration_s)):
        delay = started + index / rate_rps - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one()))
        peak_pending = max(peak_pending, dispatcher.pending_requests)
    await asyncio.gather(*tasks)
    return results, peak_pending, time.perf_counter() - started
