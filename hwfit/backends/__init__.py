"""Backends: one `Backend` interface, a registry keyed by name, one file per backend.
A loaded `hwfit.core.Variant` is a `Runner`: `run(inputs) -> outputs` on numpy arrays."""

from hwfit.backends.base import Backend, LoadStats, Runner
from hwfit.backends.registry import (
    BACKEND_MODULES,
    backend_names,
    candidate_variants,
    get_backend,
    load_variant,
    register,
)

__all__ = [
    "BACKEND_MODULES",
    "Backend",
    "LoadStats",
    "Runner",
    "backend_names",
    "candidate_variants",
    "get_backend",
    "load_variant",
    "register",
    "onnx_file",
]


def __getattr__(name: str):
    # ONNX Runtime's module, imported on first use like every backend (see registry.py).
    if name == "onnx_file":
        from hwfit.backends.ort import onnx_file

        return onnx_file
    raise AttributeError(f"module 'hwfit.backends' has no attribute {name!r}")
