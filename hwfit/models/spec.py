"""Input specs: names, dtypes, shapes with dynamic dims, how to fill them, and shape overrides."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping, Sequence

import numpy as np

from hwfit.core import InputSpecError

# The symbol of the batch dimension in shapes and in `--shape` overrides.
BATCH = "B"

Dim = int | str  # an int is fixed; a str names a dynamic dimension


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor: name, numpy dtype name, shape, and how valid values look.

    `fill` says how to make valid synthetic data: `token_ids` (ints in [low, high)),
    `mask` (ones), `zeros`, `uniform` (floats in [low, high)), `normal` (standard normal).
    """

    name: str
    dtype: str
    shape: tuple[Dim, ...]
    fill: str = "normal"
    low: float = 0.0
    high: float = 1.0

    @property
    def dynamic_dims(self) -> tuple[str, ...]:
        return tuple(d for d in self.shape if isinstance(d, str))

    def concrete_shape(self, sizes: Mapping[str, int]) -> tuple[int, ...]:
        """Replace every named dim by its size from `sizes`; a missing size is an error."""
        shape = []
        for dim in self.shape:
            if isinstance(dim, int):
                shape.append(dim)
                continue
            if dim not in sizes:
                raise InputSpecError(
                    f"input '{self.name}' has a dynamic dimension '{dim}' with no size; "
                    f"give one with --shape {self.name}={','.join(_dims_text(self.shape, dim))}"
                )
            shape.append(int(sizes[dim]))
        return tuple(shape)

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "fill": self.fill}


def _dims_text(shape: Sequence[Dim], missing: str) -> list[str]:
    return ["N" if d == missing else str(d) for d in shape]


@dataclass(frozen=True)
class InputSpec:
    """All inputs of a model plus default sizes for its dynamic dims (other than the batch)."""

    tensors: tuple[TensorSpec, ...]
    default_sizes: Mapping[str, int] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tensors)

    def tensor(self, name: str) -> TensorSpec:
        for spec in self.tensors:
            if spec.name == name:
                return spec
        raise InputSpecError(f"no input named '{name}'; the model's inputs are {list(self.names)}")

    def shapes(self, batch_size: int) -> dict[str, tuple[int, ...]]:
        """Concrete shape of every input at `batch_size`."""
        if batch_size < 1:
            raise InputSpecError(f"batch size must be >= 1, got {batch_size}")
        sizes = {**self.default_sizes, BATCH: batch_size}
        return {t.name: t.concrete_shape(sizes) for t in self.tensors}

    def with_overrides(self, overrides: Mapping[str, Sequence[Dim]]) -> "InputSpec":
        """Apply `--shape name=dims` overrides: each dim an int or a name (B for the batch)."""
        tensors = []
        for spec in self.tensors:
            if spec.name not in overrides:
                tensors.append(spec)
                continue
            new_shape = tuple(overrides[spec.name])
            if len(new_shape) != len(spec.shape):
                raise InputSpecError(
                    f"--shape {spec.name}: the model's input has rank {len(spec.shape)} "
                    f"{list(spec.shape)}, the override has rank {len(new_shape)} {list(new_shape)}"
                )
            _check_fixed_dims_agree(spec, new_shape)
            tensors.append(replace(spec, shape=new_shape))
        unknown = set(overrides) - set(self.names)
        if unknown:
            raise InputSpecError(
                f"--shape names unknown input(s) {sorted(unknown)}; the model's inputs are {list(self.names)}"
            )
        return InputSpec(tuple(tensors), dict(self.default_sizes))

    def validate(self, inputs: Mapping[str, np.ndarray], batch_size: int | None = None) -> None:
        """Raise InputSpecError naming the tensor if `inputs` do not match this spec."""
        validate_inputs(self, inputs, batch_size)

    def to_dict(self) -> dict:
        return {"inputs": [t.to_dict() for t in self.tensors], "default_sizes": dict(self.default_sizes)}


def _check_fixed_dims_agree(spec: TensorSpec, new_shape: Sequence[Dim]) -> None:
    for axis, (old, new) in enumerate(zip(spec.shape, new_shape)):
        if isinstance(old, int) and isinstance(new, int) and old != new:
            raise InputSpecError(
                f"--shape {spec.name}: axis {axis} is fixed at {old} in the model, the override says {new}"
            )


def parse_shape_overrides(texts: Iterable[str]) -> dict[str, tuple[Dim, ...]]:
    """Parse `name=B,128` strings into {name: ("B", 128)}."""
    overrides: dict[str, tuple[Dim, ...]] = {}
    for text in texts:
        name, sep, dims_text = text.partition("=")
        if not sep or not name.strip() or not dims_text.strip():
            raise InputSpecError(f"--shape '{text}' is malformed; expected NAME=DIM,DIM,... e.g. input_ids=B,128")
        dims: list[Dim] = []
        for part in dims_text.split(","):
            part = part.strip()
            if part.isdigit() and int(part) > 0:
                dims.append(int(part))
            elif part.isidentifier():
                dims.append(part)
            else:
                raise InputSpecError(
                    f"--shape '{text}': dimension '{part}' is neither a positive integer nor a name like B"
                )
        overrides[name.strip()] = tuple(dims)
    return overrides


def validate_inputs(spec: InputSpec, inputs: Mapping[str, np.ndarray], batch_size: int | None = None) -> None:
    """Check names, dtypes and shapes; dynamic dims must agree across tensors that share a name."""
    missing = [name for name in spec.names if name not in inputs]
    if missing:
        raise InputSpecError(f"missing input(s) {missing}; the model expects {list(spec.names)}")
    extra = [name for name in inputs if name not in spec.names]
    if extra:
        raise InputSpecError(f"unexpected input(s) {extra}; the model expects {list(spec.names)}")
    sizes: dict[str, int] = {} if batch_size is None else {BATCH: batch_size}
    for tensor in spec.tensors:
        _validate_tensor(tensor, np.asarray(inputs[tensor.name]), sizes)


def _validate_tensor(spec: TensorSpec, array: np.ndarray, sizes: dict[str, int]) -> None:
    if array.dtype != np.dtype(spec.dtype):
        raise InputSpecError(f"input '{spec.name}' has dtype {array.dtype}; expected {spec.dtype}")
    if array.ndim != len(spec.shape):
        raise InputSpecError(
            f"input '{spec.name}' has shape {list(array.shape)} (rank {array.ndim}); "
            f"expected rank {len(spec.shape)}: {list(spec.shape)}"
        )
    for axis, (dim, actual) in enumerate(zip(spec.shape, array.shape)):
        if isinstance(dim, int):
            if dim != actual:
                raise InputSpecError(
                    f"input '{spec.name}' has shape {list(array.shape)}; axis {axis} must be {dim} "
                    f"(expected {list(spec.shape)})"
                )
            continue
        if sizes.setdefault(dim, actual) != actual:
            raise InputSpecError(
                f"input '{spec.name}' has {dim}={actual} on axis {axis} but another input has "
                f"{dim}={sizes[dim]}; inputs sharing a dimension must agree"
            )
