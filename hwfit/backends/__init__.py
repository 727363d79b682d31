"""Backends: one `Backend` interface, a registry keyed by name, one file per backend.
A loaded variant is a `Runner`: `run(inputs) -> outputs` on numpy arrays."""

from hwfit.backends.base import PRECISIONS, Backend, LoadStats, Runner, Variant, usable_threads
from hwfit.backends.registry import (
    BACKEND_MODULES,
    backend_names,
    candidate_variants,
    get_backend,
    load_variant,
    register,
)

__all__ = [
    "BACKEND_MODULES", "PRECISIONS", "Backend", "LoadStats", "Runner", "Variant", "backend_names",
    "candidate_variants", "get_backend", "load_variant", "register", "usable_threads",
]
