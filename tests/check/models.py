"""Small ONNX models with a known amount of work, for the gate's tests and bench/check_power.py:
a chain of MatMul + Tanh layers, and the same chain with real extra work (a side branch of MatMuls
whose result is added at 1e-30, so the outputs stay the same to fp32 precision) or with lossy
(fake-quantized) weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np

WIDTH = 128


def write_matmul_chain(
    path: str | Path, layers: int = 24, extra_fraction: float = 0.0, weight_bits: int | None = None, seed: int = 0
) -> Path:
    """y = tanh(...tanh(x @ W0)... @ W_{layers-1}) with x float32 [B, WIDTH].

    `extra_fraction` adds a side branch of MatMuls worth that share of the chain's FLOPs (computed
    by ONNX Runtime, not foldable: it depends on x). `weight_bits` rounds every weight to that many
    bits (symmetric, per tensor): the lossy quantization of an accuracy regression."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    previous = "x"
    for index in range(layers):
        weight = (rng.standard_normal((WIDTH, WIDTH)) * 1.5 / np.sqrt(WIDTH)).astype(np.float32)
        if weight_bits:
            weight = _fake_quantize(weight, weight_bits)
        weights.append(numpy_helper.from_array(weight, f"W{index}"))
        nodes += [
            helper.make_node("MatMul", [previous, f"W{index}"], [f"m{index}"]),
            helper.make_node("Tanh", [f"m{index}"], [f"h{index}"]),
        ]
        previous = f"h{index}"
    if extra_fraction > 0:
        # [B, WIDTH] @ [WIDTH, k] then [B, k] @ [k, WIDTH]: 4*B*WIDTH*k FLOPs against 2*B*WIDTH^2 per layer
        k = max(int(round(extra_fraction * layers * WIDTH / 2)), 1)
        weights += [
            numpy_helper.from_array((rng.standard_normal((WIDTH, k)) / np.sqrt(WIDTH)).astype(np.float32), "E0"),
            numpy_helper.from_array((rng.standard_normal((k, WIDTH)) / np.sqrt(k)).astype(np.float32), "E1"),
            numpy_helper.from_array(np.array(1e-30, np.float32), "tiny"),
        ]
        nodes += [
            helper.make_node("MatMul", ["x", "E0"], ["e0"]),
            helper.make_node("MatMul", ["e0", "E1"], ["e1"]),
            helper.make_node("Mul", ["e1", "tiny"], ["e_scaled"]),
            helper.make_node("Add", [previous, "e_scaled"], ["with_extra"]),
        ]
        previous = "with_extra"
    nodes.append(helper.make_node("Identity", [previous], ["y"]))
    graph = helper.make_graph(
        nodes,
        "matmul_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", WIDTH])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = Path(path)
    onnx.save(model, str(path))
    return path


def _fake_quantize(weight: np.ndarray, bits: int) -> np.ndarray:
    levels = 2 ** (bits - 1) - 1
    scale = np.abs(weight).max() / levels
    return (np.round(weight / scale) * scale).astype(np.float32)
