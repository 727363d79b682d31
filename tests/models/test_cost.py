import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from hwfit.models import load_model, torch_inputs
from hwfit.models.cost import torch_cost


def _gemm_conv_model(path):
    """x[B,3,8,8] -> Conv(4 filters 3x3, pad 1) -> Flatten -> Gemm(256 -> 10)."""
    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    fc = numpy_helper.from_array(np.ones((256, 10), np.float32), "fc")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Flatten", ["c"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 10])],
        [weight, fc],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_flops_of_a_known_graph_are_exact(tmp_path):
    path = tmp_path / "tiny.onnx"
    _gemm_conv_model(path)
    model = load_model(str(path))
    cost = model.cost(4)
    conv = 2 * (4 * 8 * 8) * (3 * 3 * 3)  # output elements x MACs per output, per sample
    gemm = 2 * 256 * 10
    assert cost.flops == 4 * (conv + gemm)
    assert cost.weight_bytes == (4 * 3 * 3 * 3 + 256 * 10) * 4
    assert cost.input_bytes == 4 * 3 * 8 * 8 * 4 and cost.output_bytes == 4 * 10 * 4
    assert cost.arithmetic_intensity == pytest.approx(cost.flops / cost.min_bytes)


def test_cnn_graph_count_agrees_with_torch_flop_counter(cnn):
    inputs = cnn.synthetic_inputs(4)
    graph = cnn.cost(4)
    counted = torch_cost(cnn.torch_module(), torch_inputs(cnn, inputs), graph.input_bytes, graph.output_bytes)
    assert graph.flops == pytest.approx(counted.flops, rel=1e-6)


def test_minilm_graph_count_is_torch_count_plus_attention(minilm):
    """torch's FlopCounterMode does not count the CPU SDPA kernel; the ONNX graph has its two matmuls."""
    batch, seq, hidden, layers = 2, 128, 384, 6
    inputs = minilm.synthetic_inputs(batch)
    graph = minilm.cost(batch)
    counted = torch_cost(minilm.torch_module(), torch_inputs(minilm, inputs), graph.input_bytes, graph.output_bytes)
    attention = 2 * (2 * batch * seq * seq * hidden) * layers  # QK^T and AV per layer
    assert graph.flops == pytest.approx(counted.flops + attention, rel=0.01)
    assert "unresolved" not in graph.how


def test_flops_scale_with_batch_and_bytes_do_not(minilm):
    one, eight = minilm.cost(1), minilm.cost(8)
    assert one.flops > 2.5e9  # ~2.9 GFLOP per 128-token sequence
    assert eight.flops == pytest.approx(8 * one.flops, rel=1e-6)
    assert eight.weight_bytes == one.weight_bytes
    assert eight.arithmetic_intensity > 5 * one.arithmetic_intensity
