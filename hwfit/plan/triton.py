"""Export a plan as a Triton model repository: `<repo>/<model>/config.pbtxt` + `<repo>/<model>/1/model.onnx`
per pool, with `max_batch_size`, `instance_group` and `dynamic_batching` set as the plan's pool says.

The primary pool is exported under the model's name; other pools (overflow, fallback) as
`<model>-<role>`. Triton serves ONNX through its onnxruntime backend (and OpenVINO through its
openvino backend); a pool on a PyTorch backend has no ONNX equivalent of the same speed and is
left out, with the reason in the result.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from hwfit.core import Device, HwfitError
from hwfit.plan.schema import Plan, PoolPlan

# ONNX TensorProto element type -> Triton data type
ONNX_TO_TRITON = {
    1: "TYPE_FP32",
    2: "TYPE_UINT8",
    3: "TYPE_INT8",
    4: "TYPE_UINT16",
    5: "TYPE_INT16",
    6: "TYPE_INT32",
    7: "TYPE_INT64",
    8: "TYPE_STRING",
    9: "TYPE_BOOL",
    10: "TYPE_FP16",
    11: "TYPE_FP64",
    12: "TYPE_UINT32",
    13: "TYPE_UINT64",
    16: "TYPE_BF16",
}
TRITON_BACKENDS = {"ort": "onnxruntime", "ort-trt": "onnxruntime", "openvino": "openvino"}


class ExportError(HwfitError):
    """The plan cannot be written as a Triton repository (no exportable pool, unreadable model)."""


@dataclass
class TritonExport:
    repository: Path
    models: dict[str, Path] = field(default_factory=dict)  # Triton model name -> its directory
    left_out: dict[str, str] = field(default_factory=dict)  # pool name -> why


def export_triton(plan: Plan, model_files: dict[str, Path], repository: str | Path) -> TritonExport:
    """Write one Triton model per exportable pool. `model_files` maps pool name -> the ONNX file
    that runs the pool's precision (the caller converts: plan does not import backends)."""
    repository = Path(repository)
    result = TritonExport(repository)
    for pool in plan.pools:
        reason = _unexportable(pool, model_files)
        if reason:
            result.left_out[pool.name] = reason
            continue
        name = plan.model.name if pool.role == "primary" else f"{plan.model.name}-{pool.role}"
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
        result.models[name] = _write_model(repository / name, pool, model_files[pool.name], name)
    if not result.models:
        raise ExportError(
            "no pool of the plan can be served by Triton: "
            + "; ".join(f"{pool}: {why}" for pool, why in result.left_out.items())
        )
    return result


def _unexportable(pool: PoolPlan, model_files: dict[str, Path]) -> str | None:
    if pool.backend not in TRITON_BACKENDS:
        return (
            f"backend {pool.backend!r} has no Triton equivalent here (Triton's PyTorch backend needs a "
            f"TorchScript model and runs eager, not {pool.backend}); choose an ort or openvino pool"
        )
    if pool.name not in model_files:
        return "no ONNX file was given for it"
    return None


def _write_model(directory: Path, pool: PoolPlan, onnx_file: Path, name: str) -> Path:
    version = directory / "1"
    version.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_file, version / "model.onnx")
    (directory / "config.pbtxt").write_text(config_pbtxt(pool, onnx_file, name))
    return directory


def config_pbtxt(pool: PoolPlan, onnx_file: Path, name: str) -> str:
    """The pool as Triton model configuration text."""
    inputs, outputs = _io(onnx_file)
    device = Device.parse(pool.device)
    kind = "KIND_GPU" if device.is_gpu else "KIND_CPU"
    gpus = f" gpus: [ {device.index} ]" if device.is_gpu else ""
    lines = [
        f'name: "{name}"',
        f'backend: "{TRITON_BACKENDS[pool.backend]}"',
        f"max_batch_size: {pool.max_batch_size}",
        *(_tensor("input", tensor) for tensor in inputs),
        *(_tensor("output", tensor) for tensor in outputs),
        f"instance_group [ {{ count: {pool.replicas_per_device} kind: {kind}{gpus} }} ]",
        "dynamic_batching {",
        f"  max_queue_delay_microseconds: {int(round(pool.max_queue_delay_ms * 1000))}",
        "}",
    ]
    if pool.backend in ("ort", "ort-trt") and pool.threads:
        lines += _parameter("intra_op_thread_count", str(pool.threads)) + _parameter("inter_op_thread_count", "1")
    if pool.backend == "openvino" and pool.threads:
        lines += _parameter("INFERENCE_NUM_THREADS", str(pool.threads))
    if pool.backend == "ort-trt":
        precision = "FP16" if pool.precision == "fp16" else ("INT8" if pool.precision.startswith("int8") else "FP32")
        lines += [
            "optimization { execution_accelerators { gpu_execution_accelerator : [ {",
            '  name : "tensorrt"',
            f'  parameters {{ key: "precision_mode" value: "{precision}" }}',
            "} ] } }",
        ]
    return "\n".join(lines) + "\n"


def _parameter(key: str, value: str) -> list[str]:
    return [f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}']


def _tensor(kind: str, tensor: tuple[str, str, list[int]]) -> str:
    name, data_type, dims = tensor
    return f'{kind} [ {{ name: "{name}" data_type: {data_type} dims: [ {", ".join(str(d) for d in dims)} ] }} ]'


def _io(onnx_file: Path) -> tuple[list, list]:
    """(name, Triton type, dims without the batch dimension) of the graph's inputs and outputs."""
    import onnx

    try:
        model = onnx.load(str(onnx_file), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError, OSError, ...
        raise ExportError(f"cannot read {onnx_file} as ONNX: {error}") from error
    initializers = {init.name for init in model.graph.initializer}
    inputs = [_describe(value) for value in model.graph.input if value.name not in initializers]
    outputs = [_describe(value) for value in model.graph.output]
    return inputs, outputs


def _describe(value) -> tuple[str, str, list[int]]:
    tensor = value.type.tensor_type
    if tensor.elem_type not in ONNX_TO_TRITON:
        raise ExportError(
            f"tensor {value.name!r} has ONNX element type {tensor.elem_type}, which Triton has no type for"
        )
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
    return value.name, ONNX_TO_TRITON[tensor.elem_type], dims[1:]  # the first dimension is the batch
