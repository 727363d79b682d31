"""What the server tells clients about the model it serves (KServe v2 metadata): inputs from the
model's spec, outputs from its ONNX graph, with -1 for every dynamic dimension; and which output
axes follow which input dimension, so padded outputs can be cut back per request."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from hwfit.core import HwfitError
from hwfit.models import BATCH, ONNX_TO_NUMPY, Model
from hwfit.plan import Plan
from hwfit.serve.api import NUMPY_TO_DATATYPE, ModelInfo, TensorInfo, datatype_of

log = logging.getLogger("hwfit.serve")


@dataclass(frozen=True)
class ModelIO:
    info: ModelInfo
    output_dims: Mapping[str, Mapping[int, str]] = field(default_factory=dict)  # output -> {axis: input dim}


def describe_model(model: Model, plan: Plan, version: str = "1") -> ModelIO:
    """Metadata from the input spec and the ONNX graph's outputs (no inference is run)."""
    inputs = tuple(
        TensorInfo(t.name, datatype_of(t.dtype), tuple(-1 if isinstance(d, str) else d for d in t.shape))
        for t in model.inputs.tensors
    )
    outputs, output_dims = _outputs_from_graph(model)
    backends = sorted({pool.backend for pool in plan.pools})
    platform = "hwfit/" + ",".join(backends) + (" (EMULATED)" if "emulated" in backends else "")
    max_batch = max((pool.max_batch_size for pool in plan.pools), default=1)
    info = ModelInfo(plan.model.name, (version,), platform, inputs, outputs, max_batch)
    return ModelIO(info, output_dims)


def refine_outputs(io: ModelIO, observed: Mapping[str, tuple[tuple[int, ...], str]]) -> ModelIO:
    """Fill output dims the graph leaves symbolic (exporters name them) with sizes a replica produced,
    except the batch axis and axes that follow an input dim; `observed`: name -> (shape, dtype)."""
    outputs = []
    for tensor in io.info.outputs:
        if tensor.name not in observed:
            outputs.append(tensor)
            continue
        shape, dtype = observed[tensor.name]
        dynamic_axes = {0, *io.output_dims.get(tensor.name, {})}
        dims = (
            tuple(
                -1 if axis in dynamic_axes else (size if tensor.shape[axis] == -1 else tensor.shape[axis])
                for axis, size in enumerate(shape)
            )
            if len(shape) == len(tensor.shape)
            else tensor.shape
        )
        datatype = tensor.datatype or datatype_of(dtype)
        outputs.append(TensorInfo(tensor.name, datatype, dims))
    return replace(io, info=replace(io.info, outputs=tuple(outputs)))


def input_bytes(model: Model, batch_size: int) -> int:
    """Bytes of one batch of inputs at the spec's default sizes: the first size of the input arena."""
    shapes = model.inputs.shapes(batch_size)
    return sum(int(np.prod(shapes[t.name])) * np.dtype(t.dtype).itemsize for t in model.inputs.tensors)


def _outputs_from_graph(model: Model) -> tuple[tuple[TensorInfo, ...], dict[str, dict[int, str]]]:
    try:
        proto = _graph(model)
    except HwfitError as error:
        log.warning(
            "model %s: no ONNX graph to read output metadata from (%s); outputs are listed "
            "with unknown shapes until a replica answers",
            model.name,
            error,
        )
        return tuple(TensorInfo(name, "", (-1,)) for name in model.output_names), {}
    dim_names = _input_dim_names(model, proto)
    outputs = []
    output_dims: dict[str, dict[int, str]] = {}
    for value in proto.graph.output:
        dtype = ONNX_TO_NUMPY.get(value.type.tensor_type.elem_type)
        dims = []
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_value") and dim.dim_value > 0 and axis > 0:
                dims.append(int(dim.dim_value))
                continue
            dims.append(-1)
            if axis > 0 and dim.dim_param in dim_names:
                output_dims.setdefault(value.name, {})[axis] = dim_names[dim.dim_param]
        outputs.append(TensorInfo(value.name, NUMPY_TO_DATATYPE.get(dtype, ""), tuple(dims)))
    return tuple(outputs), output_dims


def _graph(model: Model):
    import onnx

    try:
        return onnx.load(str(model.onnx_path()), load_external_data=False)
    except HwfitError:
        raise
    except Exception as error:  # onnx raises several types for unreadable files
        raise HwfitError(f"cannot read {model.onnx_path()}: {error}") from error


def _input_dim_names(model: Model, proto) -> dict[str, str]:
    """ONNX dim_param -> the spec's dim name, for the non-batch dynamic dims of the inputs."""
    names: dict[str, str] = {}
    for value in proto.graph.input:
        try:
            spec = model.inputs.tensor(value.name)
        except HwfitError:
            continue  # an initializer listed as an input by an old exporter
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if (
                axis < len(spec.shape)
                and dim.dim_param
                and isinstance(spec.shape[axis], str)
                and spec.shape[axis] != BATCH
            ):
                names[dim.dim_param] = spec.shape[axis]
    return names
