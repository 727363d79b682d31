"""What the GPU backends ask of their libraries, checked here without a GPU: fp32 is IEEE fp32 and
tf32 its own precision, TensorRT gets a batch-range profile, a timing cache and a QDQ model in the
signed symmetric form its int8 kernels read."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from hwfit.backends import get_backend, onnx_convert, onnx_file
from hwfit.backends.ort_tensorrt import profile_shapes, tensorrt_options
from hwfit.backends.tf32 import TF32_OVERRIDE_ENV, ort_cuda_options, set_torch_fp32_math, tf32_reason
from hwfit.core import PRECISIONS, BackendError, Variant
from hwfit.hardware import spec_for_gpu
from hwfit.models import compare_outputs
from hwfit.profile import reference_outputs
from hwfit.profile.sweep import PRECISION_DTYPE

# --- fp32 vs tf32 --------------------------------------------------------------------------------


def test_tf32_is_a_precision_judged_against_its_own_peak():
    assert "tf32" in PRECISIONS
    assert Variant.parse("torch/cuda:0/tf32/b8").precision == "tf32"
    assert PRECISION_DTYPE["tf32"] == "tf32" and PRECISION_DTYPE["fp32"] == "fp32"
    h100 = spec_for_gpu("NVIDIA H100 80GB HBM3")
    # The reason the label matters: a TF32 run against the fp32 peak would read as ~7x MFU.
    assert h100.peak_flops["tf32"].value > 7 * h100.peak_flops["fp32"].value


@pytest.mark.parametrize("backend", ["torch", "torch-compile", "ort"])
def test_tf32_on_the_cpu_says_why(cnn, backend):
    reason = get_backend(backend).unavailable_reason(cnn, Variant(backend, "cpu", "tf32", 1))
    assert reason and "TF32 is a tensor-core math mode of NVIDIA GPUs" in reason


def test_tf32_needs_ampere_and_no_process_override(monkeypatch):
    monkeypatch.delenv(TF32_OVERRIDE_ENV, raising=False)
    assert tf32_reason("cuda:0", capability=(9, 0)) is None
    assert "compute capability 7.5 has no TF32" in tf32_reason("cuda:0", capability=(7, 5))
    monkeypatch.setenv(TF32_OVERRIDE_ENV, "0")
    assert f"{TF32_OVERRIDE_ENV}=0" in tf32_reason("cuda:0", capability=(9, 0))


def test_torch_fp32_turns_tf32_off_for_matmuls_and_convolutions():
    torch = pytest.importorskip("torch")
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        torch.backends.cudnn.allow_tf32 = True  # cuDNN's default: convolutions run TF32
        note = set_torch_fp32_math(torch, "fp32")
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (False, False)
        assert "IEEE fp32" in note
        set_torch_fp32_math(torch, "tf32")
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (True, True)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_ort_cuda_provider_runs_fp32_without_tf32():
    # ONNX Runtime's CUDA provider defaults use_tf32 to 1: fp32 must say 0 explicitly.
    assert ort_cuda_options(1, "fp32") == {"device_id": 1, "use_tf32": 0}
    assert ort_cuda_options(0, "tf32")["use_tf32"] == 1
    assert ort_cuda_options(0, "fp16")["use_tf32"] == 0


# --- TensorRT ------------------------------------------------------------------------------------


def test_tensorrt_profile_covers_the_batch_range(minilm):
    seq = minilm.inputs.shapes(1)["input_ids"][1]
    shapes = profile_shapes(minilm.inputs, max_batch=32, opt_batch=8)
    assert shapes["trt_profile_min_shapes"] == f"input_ids:1x{seq},attention_mask:1x{seq}"
    assert shapes["trt_profile_opt_shapes"] == f"input_ids:8x{seq},attention_mask:8x{seq}"
    assert shapes["trt_profile_max_shapes"] == f"input_ids:32x{seq},attention_mask:32x{seq}"
    with pytest.raises(BackendError, match="opt batch 64 must lie in 1..32"):
        profile_shapes(minilm.inputs, max_batch=32, opt_batch=64)


def test_tensorrt_options_per_precision(cnn):
    int8 = tensorrt_options(cnn, Variant("ort-trt", "cuda:1", "int8-static", 16))
    assert int8["device_id"] == 1
    assert int8["trt_int8_enable"] and int8["trt_fp16_enable"]
    assert int8["trt_timing_cache_enable"] and int8["trt_engine_cache_enable"]
    assert int8["trt_profile_min_shapes"] == "image:1x1x8x8" and int8["trt_profile_max_shapes"] == "image:16x1x8x8"
    fp32 = tensorrt_options(cnn, Variant("ort-trt", "cuda:0", "fp32", 16))
    assert not fp32["trt_fp16_enable"] and not fp32["trt_int8_enable"]
    # The engine key of ONNX Runtime ignores TF32: fp32 and tf32 engines must live apart.
    assert (
        fp32["trt_engine_cache_path"]
        != tensorrt_options(cnn, Variant("ort-trt", "cuda:0", "tf32", 16))["trt_engine_cache_path"]
    )


def _zero_points(path):
    proto = onnx.load(str(path))
    initializers = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}
    points = []
    for node in proto.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            points.append(initializers[node.input[2]])
    return proto, initializers, points


def test_tensorrt_int8_model_is_signed_symmetric_qdq(cnn):
    path, _, _ = onnx_convert.int8_static_tensorrt(cnn, per_channel=True)
    proto, initializers, points = _zero_points(path)
    assert points, "no Q/DQ nodes: nothing was quantized"
    assert all(point.dtype == np.int8 and not point.any() for point in points)
    # Biases stay float (TensorRT has no int32 DequantizeLinear); weights keep a Q/DQ pair.
    assert not any(
        node.op_type == "DequantizeLinear" and initializers.get(node.input[0], np.zeros(1, np.int8)).dtype == np.int32
        for node in proto.graph.node
    )
    quantize_inputs = {node.input[0] for node in proto.graph.node if node.op_type == "QuantizeLinear"}
    assert any(name in initializers for name in quantize_inputs), "weights have no QuantizeLinear (no Q/DQ pair)"
    # ONNX Runtime's own QDQ form (for its CPU kernels) is the unsigned asymmetric one TensorRT refuses.
    cpu_path, _, _ = onnx_convert.int8_static(cnn, per_channel=True)
    assert any(point.dtype == np.uint8 for point in _zero_points(cpu_path)[2])


def test_tensorrt_int8_model_still_classifies(cnn):
    import onnxruntime as ort

    path, _, _ = onnx_convert.int8_static_tensorrt(cnn, per_channel=True)
    inputs, _ = cnn.sample_inputs(64, seed=3)
    reference, _ = reference_outputs(cnn, inputs)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = {"logits": session.run(["logits"], inputs)[0]}
    assert compare_outputs(cnn, outputs, reference).top1_agreement >= 0.9


def test_ort_trt_takes_the_fp32_graph_for_fp16_and_tf32_and_its_own_qdq_for_int8(cnn):
    fp32_graph = cnn.onnx_path()
    for precision in ("fp32", "tf32", "fp16"):
        assert onnx_file(cnn, Variant("ort-trt", "cuda:0", precision, 8))[0] == fp32_graph
    trt_int8 = onnx_file(cnn, Variant("ort-trt", "cuda:0", "int8-static", 8))[0]
    assert trt_int8 != onnx_file(cnn, Variant("ort", "cpu", "int8-static", 8))[0]
    assert trt_int8 == onnx_convert.int8_static_tensorrt(cnn, True)[0]
