"""The registry of backends, keyed by name; each backend lives in its own module, imported on first use."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from itertools import product

from hwfit.backends.base import Backend
from hwfit.core import PRECISIONS, HwfitError, Variant
from hwfit.models import Model

# name -> "module:Class"; a module is imported only when its backend is asked for, so that a
# missing optional package (openvino, torch) costs nothing until it is needed.
BACKEND_MODULES: dict[str, str] = {
    "ort": "hwfit.backends.ort:OrtBackend",
    "ort-trt": "hwfit.backends.ort_tensorrt:OrtTensorrtBackend",
    "openvino": "hwfit.backends.openvino:OpenvinoBackend",
    "torch": "hwfit.backends.torch_eager:TorchEagerBackend",
    "torch-compile": "hwfit.backends.torch_compile:TorchCompileBackend",
    "emulated": "hwfit.backends.emulated:EmulatedBackend",
}

_instances: dict[str, Backend] = {}  # explicit cache of backend singletons


def register(name: str, target: str) -> None:
    """Add a backend, e.g. from a plugin: `register("mine", "pkg.mod:MyBackend")`."""
    BACKEND_MODULES[name] = target
    _instances.pop(name, None)


def get_backend(name: str) -> Backend:
    if name not in BACKEND_MODULES:
        raise HwfitError(f"unknown backend '{name}'; known: {', '.join(BACKEND_MODULES)}")
    if name not in _instances:
        module_name, _, class_name = BACKEND_MODULES[name].partition(":")
        _instances[name] = getattr(importlib.import_module(module_name), class_name)()
    return _instances[name]


def backend_names(include_emulated: bool = False) -> list[str]:
    return [n for n in BACKEND_MODULES if include_emulated or n != "emulated"]


def candidate_variants(
    model: Model,
    backends: Iterable[str] | None = None,
    devices: Iterable[str] | None = None,
    precisions: Iterable[str] | None = None,
    batch_sizes: Iterable[int] = (1,),
    threads: int | None = None,
) -> list[tuple[Variant, str | None]]:
    """Every combination asked for, each with the reason it cannot run here (None if it can).

    Unless precisions are named, a backend is only paired with the precisions it implements;
    devices and precisions the hardware or packages cannot run stay in, with their reason.
    """
    from hwfit.hardware import device_names

    rows = []
    names = list(backends or backend_names())
    device_list = list(devices or device_names())
    for name, device, precision, batch in product(names, device_list, list(precisions or PRECISIONS), batch_sizes):
        backend = get_backend(name)
        if precisions is None and precision not in backend.precisions:
            continue
        variant = Variant(name, device, precision, batch, threads)
        rows.append((variant, backend.unavailable_reason(model, variant)))
    return rows


def load_variant(model: Model, variant: Variant):
    """Load a runner for `variant` (raises VariantUnavailable with the reason if it cannot run)."""
    return get_backend(variant.backend).load(model, variant)
