"""ONNX conversions shared by ONNX Runtime and OpenVINO: int8 dynamic and static (QDQ) quantization
with ONNX Runtime's quantizer (and a TensorRT form of the QDQ model), and fp16 casting. Results are
cached by source hash and options."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hwfit.backends.convert import cached_conversion
from hwfit.models import Model

# Quantize only the ops that carry the weights: quantizing Add/Softmax/LayerNorm costs accuracy
# on transformers for little speed.
QUANTIZED_OPS = ["MatMul", "Gemm", "Conv"]
CALIBRATION_BATCHES = 8
CALIBRATION_BATCH_SIZE = 8


def _quiet_quantizer() -> None:
    # The quantizer logs a "please run pre-processing" warning at WARNING on every call.
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))


def _preprocessed(model: Model) -> Path:
    """ORT's quantization pre-processing (symbolic shape inference + graph cleanup), cached."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    def produce(tmp: Path) -> None:
        # Symbolic shape inference fails on some exports (and then writes a temp file in the cwd): skip it.
        quant_pre_process(str(model.onnx_path()), str(tmp), skip_symbolic_shape=True)

    path, _, _ = cached_conversion(model.content_hash, {"step": "quant-preprocess"}, produce)
    return path


def int8_dynamic(model: Model, per_channel: bool) -> tuple[Path, float, bool]:
    """Weights int8 ahead of time, activations quantized per batch at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _quiet_quantizer()
    source = _preprocessed(model)

    def produce(tmp: Path) -> None:
        quantize_dynamic(
            str(source),
            str(tmp),
            per_channel=per_channel,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=QUANTIZED_OPS,
        )

    return cached_conversion(model.content_hash, {"quant": "dynamic", "per_channel": per_channel, "v": 1}, produce)


class _Calibration:
    """CalibrationDataReader over the model's eval set if it has one, else over synthetic batches."""

    def __init__(self, model: Model):
        self.batches = iter(calibration_batches(model))

    def get_next(self):
        return next(self.batches, None)


def calibration_batches(model: Model) -> list[dict[str, np.ndarray]]:
    """Real inputs where the model has them (eval set, tokenized sentences), else synthetic ones."""
    samples, _ = model.sample_inputs(CALIBRATION_BATCHES * CALIBRATION_BATCH_SIZE, seed=1000)
    total = next(iter(samples.values())).shape[0]
    return [
        {name: array[start : start + CALIBRATION_BATCH_SIZE] for name, array in samples.items()}
        for start in range(0, total, CALIBRATION_BATCH_SIZE)
    ]


GELU_OPS = {"Erf", "Gelu", "FastGelu", "BiasGelu", "Tanh"}


def static_exclusions(path: Path) -> list[str]:
    """MatMuls to keep in float under static int8: activation × activation products (attention
    scores), and those fed by a GELU, whose heavy-tailed outputs a per-tensor activation scale
    crushes. On MiniLM this lifts cosine to fp32 from ~0.94 to ~0.99."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    initializers = {init.name for init in proto.graph.initializer}
    producer = {out: node for node in proto.graph.node for out in node.output}

    def fed_by_gelu(name: str, depth: int = 4) -> bool:
        node = producer.get(name)
        if node is None or depth == 0:
            return False
        if node.op_type in GELU_OPS:
            return True
        return any(fed_by_gelu(parent, depth - 1) for parent in node.input)

    excluded = []
    for node in proto.graph.node:
        if node.op_type != "MatMul":
            continue
        weights_free = not any(name in initializers for name in node.input)
        if weights_free or fed_by_gelu(node.input[0]):
            excluded.append(node.name)
    return excluded


def int8_static(model: Model, per_channel: bool) -> tuple[Path, float, bool]:
    """QDQ int8 with activation ranges calibrated (MinMax) on the model's inputs."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    _quiet_quantizer()
    source = _preprocessed(model)
    calibration_source = model.sample_inputs(1)[1]

    def produce(tmp: Path) -> None:
        quantize_static(
            str(source),
            str(tmp),
            _Calibration(model),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=QUANTIZED_OPS,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=static_exclusions(source),
        )

    options = {"quant": "static-qdq", "per_channel": per_channel, "calibration": calibration_source, "v": 3}
    return cached_conversion(model.content_hash, options, produce)


# What TensorRT's explicit quantization reads from a QDQ graph: signed int8 with zero points of 0
# (symmetric) for activations and weights alike; a Q/DQ pair per consumer, not shared; Q/DQ on the
# weights too; float biases (TensorRT fuses them, it has no int32 DequantizeLinear). Anything else
# (ORT's default uint8 asymmetric activations) leaves those nodes outside TensorRT, so "int8" would
# not be TensorRT int8.
TENSORRT_QDQ_OPTIONS = {
    "ActivationSymmetric": True,
    "WeightSymmetric": True,
    "AddQDQPairToWeight": True,
    "DedicatedQDQPair": True,
    "QuantizeBias": False,
    "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
}


def int8_static_tensorrt(model: Model, per_channel: bool) -> tuple[Path, float, bool]:
    """QDQ int8 for TensorRT: signed symmetric activations and weights (MinMax calibration on the
    model's inputs), the layout TensorRT's explicit quantization builds int8 kernels from."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    _quiet_quantizer()
    source = _preprocessed(model)
    calibration_source = model.sample_inputs(1)[1]

    def produce(tmp: Path) -> None:
        quantize_static(
            str(source),
            str(tmp),
            _Calibration(model),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=QUANTIZED_OPS,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=static_exclusions(source),
            extra_options=dict(TENSORRT_QDQ_OPTIONS),
        )

    options = {
        "quant": "static-qdq-tensorrt",
        "per_channel": per_channel,
        "calibration": calibration_source,
        "v": 1,
    }
    return cached_conversion(model.content_hash, options, produce)


def float16(model: Model) -> tuple[Path, float, bool]:
    """fp16 weights and compute, fp32 inputs and outputs (keep_io_types) so callers feed the same arrays."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    def produce(tmp: Path) -> None:
        proto = onnx.load(str(model.onnx_path()))
        onnx.save(convert_float_to_float16(proto, keep_io_types=True), str(tmp))

    return cached_conversion(model.content_hash, {"cast": "fp16", "keep_io_types": True, "v": 1}, produce)
