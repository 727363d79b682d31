"""Synthetic inputs that are valid for a model: token ids inside the vocabulary, masks, images in range."""

from __future__ import annotations

import numpy as np

from hwfit.core import InputSpecError
from hwfit.models.spec import InputSpec, TensorSpec


def synthetic_inputs(spec: InputSpec, batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """One batch of inputs, reproducible for a given seed."""
    rng = np.random.default_rng(seed)
    shapes = spec.shapes(batch_size)
    return {t.name: _fill(t, shapes[t.name], rng) for t in spec.tensors}


def _fill(spec: TensorSpec, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    dtype = np.dtype(spec.dtype)
    if spec.fill == "token_ids":
        return rng.integers(int(spec.low), int(spec.high), size=shape).astype(dtype)
    if spec.fill == "mask":
        return np.ones(shape, dtype=dtype)
    if spec.fill == "zeros":
        return np.zeros(shape, dtype=dtype)
    if spec.fill == "uniform":
        return rng.uniform(spec.low, spec.high, size=shape).astype(dtype)
    if spec.fill == "normal":
        if dtype.kind in "iub":
            return np.zeros(shape, dtype=dtype)
        return rng.standard_normal(size=shape).astype(dtype)
    raise InputSpecError(f"input '{spec.name}': unknown fill '{spec.fill}'")
