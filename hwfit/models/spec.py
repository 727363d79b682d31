"""Input specs: names, dtypes, shapes with dynamic dims, how to fill them, and shape overrides."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

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

    def with_overrides(self, overrides: Mapping[str, Sequence[Dim]]) -> InputSpec:
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

    def validate(
        self,
        inputs: Mapping[str, np.ndarray],
        batch_size: int | None = None,
        *,
        max_batch_size: int | None = None,
        finite: bool = False,
    ) -> None:
        """The one check of inputs against this spec (Runner.run and the server both call it); raises
        InputSpecError naming the input, what it got and what the model expects.

        Checks names (unknown, missing), dtypes, ranks, fixed dims, and that inputs sharing a dynamic
        dim agree on its size (the batch B included; `batch_size`, if given, fixes B). With
        `max_batch_size`, B must lie in 1..max_batch_size; with `finite`, float inputs must hold no
        NaN or infinity. A library caller of Runner.run gets neither limit; the server asks for both.
        """
        _check_names(self, inputs)
        sizes: dict[str, tuple[int, str]] = {}  # dim -> (size, who set it), for the agreement message
        if batch_size is not None:
            sizes[BATCH] = (batch_size, f"the batch size asked for is {batch_size}")
        for tensor in self.tensors:
            array = np.asarray(inputs[tensor.name])
            _check_tensor(tensor, array, sizes)
            if finite and array.dtype.kind == "f":
                _check_finite(tensor.name, array)
        if max_batch_size is not None and BATCH in sizes:
            _check_batch_limit(sizes[BATCH], max_batch_size)

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


def validate_inputs(
    spec: InputSpec,
    inputs: Mapping[str, np.ndarray],
    batch_size: int | None = None,
    *,
    max_batch_size: int | None = None,
    finite: bool = False,
) -> None:
    """`spec.validate(...)` as a function: the same single check, the same messages."""
    spec.validate(inputs, batch_size, max_batch_size=max_batch_size, finite=finite)


def _shape_text(shape: Sequence[Dim]) -> str:
    """[B, 4] for the spec's shape, [2, 4] for an array's: names unquoted."""
    return "[" + ", ".join(str(dim) for dim in shape) + "]"


def _check_names(spec: InputSpec, inputs: Mapping[str, np.ndarray]) -> None:
    """Unknown and missing inputs in one message: a misspelt name is usually both."""
    unknown = [name for name in inputs if name not in spec.names]
    missing = [name for name in spec.names if name not in inputs]
    problems = []
    if unknown:
        problems.append(f"unknown input(s) {unknown}")
    if missing:
        problems.append(f"missing input(s) {missing}")
    if problems:
        raise InputSpecError(f"{' and '.join(problems)}; the model's inputs are {list(spec.names)}")


def _check_tensor(spec: TensorSpec, array: np.ndarray, sizes: dict[str, tuple[int, str]]) -> None:
    """dtype, rank and fixed dims; a dynamic dim must have the size another input gave it."""
    if array.dtype != np.dtype(spec.dtype):
        raise InputSpecError(f"input '{spec.name}' has dtype {array.dtype}; the model expects {spec.dtype}")
    if array.ndim != len(spec.shape):
        raise InputSpecError(
            f"input '{spec.name}' has shape {_shape_text(array.shape)} (rank {array.ndim}); "
            f"the model expects rank {len(spec.shape)}: {_shape_text(spec.shape)}"
        )
    for axis, (dim, actual) in enumerate(zip(spec.shape, array.shape, strict=True)):
        if isinstance(dim, int):
            if dim != actual:
                raise InputSpecError(
                    f"input '{spec.name}' has shape {_shape_text(array.shape)}; axis {axis} must be {dim} "
                    f"(the model expects {_shape_text(spec.shape)})"
                )
            continue
        size, source = sizes.setdefault(dim, (int(actual), f"input '{spec.name}' has {dim}={actual}"))
        if size != actual:
            raise InputSpecError(
                f"input '{spec.name}' has {dim}={actual} on axis {axis} but {source}; "
                f"inputs sharing a dimension must agree{' (B is the batch size)' if dim == BATCH else ''}"
            )


def _check_batch_limit(batch: tuple[int, str], max_batch_size: int) -> None:
    size, source = batch
    if 1 <= size <= max_batch_size:
        return
    advice = "send at least one sample" if size < 1 else "split it"
    raise InputSpecError(
        f"the inputs have batch size {size} ({source}); this model takes 1 to {max_batch_size} per request "
        f"(max_batch_size {max_batch_size}): {advice}"
    )


def _check_finite(name: str, array: np.ndarray) -> None:
    finite = np.isfinite(array)
    if finite.all():
        return
    bad = int(array.size - np.count_nonzero(finite))
    first = tuple(int(i) for i in np.argwhere(~finite)[0])
    raise InputSpecError(
        f"input '{name}' holds {bad} non-finite value(s) (NaN or infinity), the first at index {list(first)} "
        f"= {array[first]}; expected finite numbers"
    )
