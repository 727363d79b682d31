"""FLOPs and minimum bytes moved per batch, so arithmetic intensity and the roofline bound are known.

FLOPs count the multiply-adds of MatMul, Gemm, Conv, ConvTranspose and Einsum (2 per MAC):
the "useful" model FLOPs that MFU is computed from. Elementwise work, softmax and
normalisation are counted apart (`other_flops`, one per output element) and not in `flops`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwfit.core import ModelSourceError

MATMUL_OPS = {"MatMul", "Gemm", "MatMulInteger", "QLinearMatMul", "FusedMatMul"}
CONV_OPS = {"Conv", "ConvInteger", "QLinearConv", "ConvTranspose"}
ELEMENTWISE_OPS = {
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Relu",
    "Erf",
    "Tanh",
    "Sigmoid",
    "Pow",
    "Sqrt",
    "Softmax",
    "LayerNormalization",
    "Gelu",
    "ReduceMean",
    "BatchNormalization",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Exp",
    "Clip",
}


@dataclass(frozen=True)
class ModelCost:
    """Work and minimum traffic for one batch."""

    batch_size: int
    flops: float  # matmul/conv FLOPs (2 per multiply-add)
    other_flops: float  # elementwise and normalisation, one per output element
    weight_bytes: int
    input_bytes: int
    output_bytes: int
    how: str  # how the FLOPs were counted

    @property
    def min_bytes(self) -> int:
        """Weights read once plus inputs and outputs: the least any backend must move per batch."""
        return self.weight_bytes + self.input_bytes + self.output_bytes

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs per byte of minimum traffic: compare with peak FLOP/s / bandwidth for the roofline."""
        return self.flops / self.min_bytes if self.min_bytes else float("inf")

    @property
    def flops_per_sample(self) -> float:
        return self.flops / self.batch_size

    def roofline_bound_s(self, peak_flops: float, bandwidth_bytes_per_s: float) -> float:
        """Least time one batch can take on a device: max of compute time and memory time."""
        return max(self.flops / peak_flops, self.min_bytes / bandwidth_bytes_per_s)

    def to_dict(self) -> dict:
        return {
            "batch_size": self.batch_size,
            "flops": self.flops,
            "flops_per_sample": self.flops_per_sample,
            "other_flops": self.other_flops,
            "weight_bytes": self.weight_bytes,
            "input_bytes": self.input_bytes,
            "output_bytes": self.output_bytes,
            "min_bytes": self.min_bytes,
            "arithmetic_intensity": self.arithmetic_intensity,
            "how": self.how,
        }


def onnx_cost(path: Path, shapes: dict[str, tuple[int, ...]], input_bytes: int) -> ModelCost:
    """Count FLOPs from the ONNX graph after shape inference at concrete input shapes."""
    inferred, known = shapes_at(path, shapes)
    flops = other = 0.0
    unresolved = 0
    for node in inferred.graph.node:
        if node.op_type in MATMUL_OPS | CONV_OPS and node.output[0] not in known:
            unresolved += 1
        if node.op_type in MATMUL_OPS:
            flops += _matmul_flops(node, known)
        elif node.op_type in CONV_OPS:
            flops += _conv_flops(node, known)
        elif node.op_type in ELEMENTWISE_OPS and node.output[0] in known:
            other += float(np.prod(known[node.output[0]]))
    how = "counted from the ONNX graph (MatMul/Gemm/Conv, 2 FLOPs per MAC)"
    if unresolved:
        how += f"; {unresolved} matmul/conv node(s) had unresolved shapes and are not counted (a lower bound)"
    weight_bytes = sum(_initializer_bytes(init) for init in inferred.graph.initializer)
    output_bytes = sum(_value_bytes(value, known) for value in inferred.graph.output)
    batch = next(iter(shapes.values()))[0]
    return ModelCost(batch, flops, other, weight_bytes, input_bytes, output_bytes, how=how)


def shapes_at(path: Path, shapes: dict[str, tuple[int, ...]]):
    """(inferred ModelProto, {tensor name: concrete shape}) with the inputs fixed at `shapes`."""
    import onnx

    proto = onnx.load(str(path))
    _fix_input_shapes(proto, shapes)
    inferred = _infer_shapes(proto, path)
    return inferred, _known_shapes(inferred)


def _infer_shapes(proto, path: Path):
    """ONNX Runtime's symbolic shape inference resolves more than onnx's own (Reshape chains at batch 1).

    Its public `infer_shapes` saves a temp model into the current directory when inference is
    incomplete and then raises; we drive its steps ourselves to keep partial results and write nothing.
    """
    import onnx

    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        inference = SymbolicShapeInference(2**31 - 1, True, False, 0)
        inference._preprocess(proto)
        while inference.run_:
            inference._infer_impl()
        inference._update_output_from_vi()
        return inference.out_mp_
    except Exception:  # falls back to onnx's inference, which handles fewer ops but never needs ORT
        pass
    try:
        return onnx.shape_inference.infer_shapes(proto, data_prop=True)
    except Exception as error:
        raise ModelSourceError(f"ONNX shape inference failed on {path.name}: {error}") from error


def torch_cost(module, example: tuple, input_bytes: int, output_bytes: int) -> ModelCost:
    """Count FLOPs with torch's FlopCounterMode on one forward pass."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(*example)
    weight_bytes = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    batch = int(example[0].shape[0])
    return ModelCost(
        batch,
        float(counter.get_total_flops()),
        0.0,
        weight_bytes,
        input_bytes,
        output_bytes,
        how="torch.utils.flop_counter.FlopCounterMode",
    )


def _onnx_inferred_shapes(path: Path, shapes: dict[str, tuple[int, ...]]) -> dict[str, list[int]]:
    """{tensor name: concrete shape} by onnx's own shape inference alone; {} where it fails."""
    import onnx

    proto = onnx.load(str(path))
    _fix_input_shapes(proto, shapes)
    try:
        return _known_shapes(onnx.shape_inference.infer_shapes(proto, data_prop=True))
    except Exception:  # broad on purpose: the symbolic inference is the fallback
        return {}


def _fix_input_shapes(proto, shapes: dict[str, tuple[int, ...]]) -> None:
    for value in proto.graph.input:
        if value.name not in shapes:
            continue
        dims = value.type.tensor_type.shape.dim
        for dim, size in zip(dims, shapes[value.name]):
            dim.Clear()
            dim.dim_value = int(size)


def _known_shapes(proto) -> dict[str, list[int]]:
    known: dict[str, list[int]] = {}
    values = list(proto.graph.value_info) + list(proto.graph.input) + list(proto.graph.output)
    for value in values:
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            known[value.name] = [int(d.dim_value) for d in dims]
    for init in proto.graph.initializer:
        known[init.name] = list(init.dims)
    return known


def _matmul_flops(node, known: dict[str, list[int]]) -> float:
    a, out = node.input[0], node.output[0]
    if a not in known or out not in known:
        return 0.0
    k = known[a][-1]
    if node.op_type == "Gemm":
        transposed = any(attr.name == "transA" and attr.i for attr in node.attribute)
        k = known[a][0] if transposed else known[a][-1]
    return 2.0 * float(np.prod(known[out])) * k


def _conv_flops(node, known: dict[str, list[int]]) -> float:
    weight_index = 3 if node.op_type == "QLinearConv" else 1
    weight, out = node.input[weight_index], node.output[0]
    if weight not in known or out not in known:
        return 0.0
    w = known[weight]  # [C_out, C_in/group, kh, kw] for Conv
    macs_per_output = float(np.prod(w[1:]))
    if node.op_type == "ConvTranspose":
        return 2.0 * float(np.prod(known[node.input[0]])) * w[1] * float(np.prod(w[2:]))
    return 2.0 * float(np.prod(known[out])) * macs_per_output


def _initializer_bytes(init) -> int:
    import onnx

    itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(init.data_type)).itemsize
    return int(np.prod(init.dims)) * itemsize if init.dims else itemsize


def _value_bytes(value, known: dict[str, list[int]]) -> int:
    import onnx

    if value.name not in known:
        return 0
    itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)).itemsize
    return int(np.prod(known[value.name])) * itemsize


def output_shapes(model, batch_size: int) -> dict[str, tuple[int, ...]]:
    """Output shapes at `batch_size` from ONNX shape inference (nothing is run): onnx's own first (it
    takes milliseconds), ORT's symbolic inference only when that leaves an output unknown (importing it
    pulls in torch: seconds, which a worker process starting up should not pay for nothing)."""
    known = _onnx_inferred_shapes(model.onnx_path(), model.inputs.shapes(batch_size))
    if any(name not in known for name in model.output_names):
        _, known = shapes_at(model.onnx_path(), model.inputs.shapes(batch_size))
    missing = [name for name in model.output_names if name not in known]
    if missing:
        raise ModelSourceError(f"cannot infer the shape of output(s) {missing} of {model.name}")
    return {name: tuple(known[name]) for name in model.output_names}
