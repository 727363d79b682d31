"""Check a decoded request against the model's metadata before it reaches the scheduler: input
names, datatypes, ranks and fixed dims, one batch size across inputs within max_batch_size,
finite float values, known output names. Each failure is a BadRequest naming the tensor, what it
got and what was expected."""

from __future__ import annotations

import numpy as np

from hwfit.serve.api import BadRequest, InferRequest, ModelInfo, TensorInfo
from hwfit.serve.frontend.codec import datatype_of_array

FLOAT_DATATYPES = {"FP16", "FP32", "FP64"}


def validate_request(request: InferRequest, info: ModelInfo) -> int | None:
    """Raise BadRequest if `request` does not fit `info`; return its batch size (None if the
    model does not batch, max_batch_size 0)."""
    _check_names(request, info)
    for spec in info.inputs:
        _check_tensor(spec, request.inputs[spec.name])
    batch_size = _check_batch(request, info)
    for spec in info.inputs:
        if spec.datatype in FLOAT_DATATYPES:
            _check_finite(spec.name, request.inputs[spec.name])
    _check_requested_outputs(request, info)
    return batch_size


def _check_names(request: InferRequest, info: ModelInfo) -> None:
    expected = [spec.name for spec in info.inputs]
    unknown = [name for name in request.inputs if name not in expected]
    if unknown:
        raise BadRequest(f"unknown input(s) {unknown} for model '{info.name}'; its inputs are {expected}")
    missing = [name for name in expected if name not in request.inputs]
    if missing:
        raise BadRequest(f"missing input(s) {missing} for model '{info.name}'; its inputs are {expected}")


def _check_tensor(spec: TensorInfo, array: np.ndarray) -> None:
    datatype = datatype_of_array(array)
    if datatype != spec.datatype:
        raise BadRequest(f"input '{spec.name}' has datatype {datatype}; the model expects {spec.datatype}")
    if array.ndim != len(spec.shape):
        raise BadRequest(
            f"input '{spec.name}' has shape {list(array.shape)} (rank {array.ndim}); the model expects "
            f"rank {len(spec.shape)}: {list(spec.shape)} (-1 is any size)"
        )
    for axis, (expected, actual) in enumerate(zip(spec.shape, array.shape)):
        if expected != -1 and expected != actual:
            raise BadRequest(
                f"input '{spec.name}' has shape {list(array.shape)}; axis {axis} must be {expected} "
                f"(the model expects {list(spec.shape)}, -1 is any size)"
            )


def _check_batch(request: InferRequest, info: ModelInfo) -> int | None:
    """With max_batch_size > 0, axis 0 of every input is the batch: same size everywhere, 1..max."""
    if info.max_batch_size <= 0:
        return None
    sizes = {name: int(array.shape[0]) for name, array in request.inputs.items()}
    distinct = sorted(set(sizes.values()))
    if len(distinct) > 1:
        raise BadRequest(
            f"inputs disagree on the batch size (axis 0): {sizes}; every input must have the same batch size"
        )
    batch_size = distinct[0]
    if batch_size < 1:
        raise BadRequest("batch size (axis 0 of every input) is 0; send at least one sample")
    if batch_size > info.max_batch_size:
        raise BadRequest(
            f"batch size {batch_size} (axis 0 of every input) exceeds model '{info.name}'s max_batch_size "
            f"{info.max_batch_size}; split the request"
        )
    return batch_size


def _check_finite(name: str, array: np.ndarray) -> None:
    finite = np.isfinite(array)
    if finite.all():
        return
    bad = int(array.size - np.count_nonzero(finite))
    first = tuple(int(i) for i in np.argwhere(~finite)[0])
    raise BadRequest(
        f"input '{name}' holds {bad} non-finite value(s) (NaN or infinity), the first at index {list(first)} "
        f"= {array[first]}; expected finite numbers"
    )


def _check_requested_outputs(request: InferRequest, info: ModelInfo) -> None:
    if request.requested_outputs is None:
        return
    known = [spec.name for spec in info.outputs]
    unknown = [name for name in request.requested_outputs if name not in known]
    if unknown:
        raise BadRequest(f"unknown output(s) {unknown} requested from model '{info.name}'; its outputs are {known}")
