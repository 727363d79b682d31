"""The planner's grid: every point that could serve a model on the given devices — each runnable
backend × precision, each layout (K replicas × t threads that fit the cores), each batch size."""

from __future__ import annotations

from hwfit.backends import backend_names, candidate_variants, get_backend
from hwfit.core import Variant, usable_threads
from hwfit.models import Model

GRID_BATCHES = (1, 2, 4, 8, 16, 32, 64)
GPU_REPLICAS = (1, 2)


def cpu_layouts(cores: int) -> list[tuple[int, int]]:
    """(replicas, threads) with replicas × threads ≤ cores: threads and replicas in powers of two
    (and all the cores); oversubscribing the cores is never a serving configuration."""
    threads_options = sorted({t for t in _powers_of_two(cores)} | {cores})
    layouts = []
    for threads in threads_options:
        for replicas in sorted({r for r in _powers_of_two(cores // threads)} | {cores // threads}):
            layouts.append((replicas, threads))
    return layouts


def _powers_of_two(limit: int) -> list[int]:
    values, value = [], 1
    while value <= limit:
        values.append(value)
        value *= 2
    return values


def grid_variants(
    model: Model, devices: list[str], batch_sizes: tuple[int, ...] = GRID_BATCHES, backends: list[str] | None = None
) -> tuple[list[Variant], list[tuple[Variant, str]]]:
    """Runnable grid points, and the (backend, device, precision) families that cannot run, with why."""
    runnable, unavailable = [], []
    names = backends or [name for name in backend_names() if name != "emulated"]
    for template, reason in candidate_variants(model, names, devices, None, [1]):
        reason = reason or get_backend(template.backend).unavailable_reason(model, template)
        if reason:
            unavailable.append((template, reason))
            continue
        for replicas, threads in _layouts(template.device):
            knobs = (("replicas", str(replicas)),) if replicas > 1 else ()
            for batch in batch_sizes:
                runnable.append(Variant(template.backend, template.device, template.precision, batch, threads, knobs))
    return runnable, unavailable


def _layouts(device: str) -> list[tuple[int, int | None]]:
    if device == "cpu":
        return cpu_layouts(usable_threads())
    return [(replicas, None) for replicas in GPU_REPLICAS]
