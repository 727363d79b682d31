"""Reading an ONNX graph: load with clear errors, input specs from the graph, vocabulary sizes."""

from __future__ import annotations

from pathlib import Path

from hwfit.core import ModelSourceError
from hwfit.models.spec import BATCH, InputSpec, TensorSpec

# ONNX TensorProto element types to numpy dtype names (those models take and return).
ONNX_TO_NUMPY = {
    1: "float32",
    2: "uint8",
    3: "int8",
    5: "int16",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
    16: "bfloat16",
}

# Without a hint in the graph, a dynamic non-batch dim gets this size (sequence length for text).
DEFAULT_DYNAMIC_SIZE = 128


def load_onnx(path: Path, load_weights: bool = True):
    """Load and check an ONNX file; a missing or malformed file is a ModelSourceError."""
    import onnx

    if not path.exists():
        raise ModelSourceError(f"ONNX file not found: {path}")
    try:
        proto = onnx.load(str(path), load_external_data=load_weights)
    except Exception as error:
        raise ModelSourceError(
            f"{path} is not a readable ONNX model ({type(error).__name__}: {error}); "
            "expected a protobuf ModelProto as written by onnx.save or torch.onnx.export"
        ) from error
    if len(proto.graph.node) == 0:
        raise ModelSourceError(f"{path} holds no graph nodes: expected an ONNX model with a graph")
    try:
        onnx.checker.check_model(proto if load_weights else str(path))
    except Exception as error:
        raise ModelSourceError(f"{path} fails the ONNX checker: {error}") from error
    return proto


def graph_inputs(proto) -> list:
    """Graph inputs that are real inputs, not initializers listed as inputs (old exporters)."""
    initializers = {init.name for init in proto.graph.initializer}
    return [value for value in proto.graph.input if value.name not in initializers]


def vocabulary_sizes(proto) -> dict[str, int]:
    """For int inputs feeding a Gather over an initializer table, the table's row count."""
    tables = {init.name: list(init.dims) for init in proto.graph.initializer}
    sizes: dict[str, int] = {}
    for node in proto.graph.node:
        if node.op_type == "Gather" and len(node.input) == 2 and node.input[0] in tables:
            sizes[node.input[1]] = int(tables[node.input[0]][0])
    return sizes


def input_spec_from_onnx(proto) -> InputSpec:
    """Names, dtypes, shapes of the graph's inputs; axis 0, when dynamic, becomes the batch dim B."""
    vocab = vocabulary_sizes(proto)
    tensors: list[TensorSpec] = []
    default_sizes: dict[str, int] = {}
    for value in graph_inputs(proto):
        tensor_type = value.type.tensor_type
        dtype = ONNX_TO_NUMPY.get(tensor_type.elem_type)
        if dtype is None:
            raise ModelSourceError(
                f"input '{value.name}' has ONNX element type {tensor_type.elem_type}, which hwfit cannot feed"
            )
        shape = []
        for axis, dim in enumerate(tensor_type.shape.dim):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                shape.append(int(dim.dim_value))
            elif axis == 0:
                shape.append(BATCH)
            else:
                name = dim.dim_param or f"{value.name}_dim{axis}"
                shape.append(name)
                default_sizes.setdefault(name, DEFAULT_DYNAMIC_SIZE)
        tensors.append(_with_fill(TensorSpec(value.name, dtype, tuple(shape)), vocab))
    return InputSpec(tuple(tensors), default_sizes)


def _with_fill(spec: TensorSpec, vocab: dict[str, int]) -> TensorSpec:
    from dataclasses import replace

    lowered = spec.name.lower()
    if spec.dtype in ("int64", "int32") and "mask" in lowered:
        return replace(spec, fill="mask")
    if spec.dtype in ("int64", "int32") and "type" in lowered:
        return replace(spec, fill="zeros")
    if spec.dtype in ("int64", "int32"):
        high = vocab.get(spec.name, 2)
        return replace(spec, fill="token_ids", low=0, high=high)
    return spec


def output_names_from_onnx(proto) -> tuple[str, ...]:
    return tuple(value.name for value in proto.graph.output)
