"""The measured training loop: a workload, a set of changes (`Changes`), N steps under the profiler.

`run_training` seeds torch, applies the changes (precision, memory format, compile, checkpointing,
fused optimizer, loader knobs, batch size), runs the steps with the phases timed, and returns the
losses, the breakdown, FLOPs per step (torch.utils.flop_counter), peak memory and energy.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from hwfit.core import Device
from hwfit.train.errors import LoaderError, LossNotFinite, OutOfMemory, TrainError
from hwfit.train.profiler import Breakdown, StepProfiler
from hwfit.train.workload import Workload, load_workload

SEED = 0


@dataclass(frozen=True)
class Changes:
    """What an experiment changes from the workload as given; the defaults change nothing."""

    amp: str | None = None  # "bf16" | "fp16" autocast
    grad_scaler: bool = False  # with fp16 on a GPU
    channels_last: bool = False
    compile: bool = False
    checkpointing: bool = False
    fused_optimizer: bool = False
    batch_size: int | None = None
    num_workers: int = 0
    pin_memory: bool = False
    prefetch_factor: int | None = None
    persistent_workers: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v != getattr(NO_CHANGES, k)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Changes:
        return cls(**values)

    def merged(self, other: Changes) -> Changes:
        """These changes with `other`'s non-default fields on top."""
        return replace(self, **other.to_dict())


NO_CHANGES = Changes()


@dataclass
class TrainResult:
    """What N steps of one configuration gave."""

    target: str
    device: str
    changes: dict[str, Any]
    batch_size: int
    losses: list[float]
    breakdown: Breakdown
    flops_per_step: float | None  # counted by torch.utils.flop_counter on one step
    peak_memory_bytes: int | None
    peak_memory_how: str
    energy: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def achieved_flops(self) -> float | None:
        if self.flops_per_step is None or self.breakdown.step_s <= 0:
            return None
        return self.flops_per_step / self.breakdown.step_s

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "device": self.device,
            "changes": self.changes,
            "batch_size": self.batch_size,
            "losses": self.losses,
            "breakdown": self.breakdown.to_dict(),
            "flops_per_step": self.flops_per_step,
            "achieved_flops": self.achieved_flops,
            "peak_memory_bytes": self.peak_memory_bytes,
            "peak_memory_how": self.peak_memory_how,
            "energy": self.energy,
            "notes": self.notes,
        }


def run_training(
    target: str | Workload,
    changes: Changes = NO_CHANGES,
    steps: int = 20,
    warmup: int = 3,
    device: str = "cpu",
    trace: str | None = None,
    measure_energy: bool = True,
    count_flops: bool = True,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Run `steps` optimizer steps of `target` with `changes`; the first `warmup` are not averaged."""
    import torch

    if steps <= warmup:
        raise TrainError(f"--steps ({steps}) must be larger than --warmup ({warmup}) to leave warm steps to time")
    parsed = Device.parse(device)
    torch.manual_seed(SEED)
    workload = load_workload(target) if isinstance(target, str) else target
    notes: list[str] = []
    flops = _count_flops(workload, changes, parsed) if count_flops else None
    model = _prepare_model(workload, changes, parsed, notes)
    optimizer = _optimizer(workload, model, changes)
    loader = build_loader(workload, changes, parsed)
    batch_size = changes.batch_size or workload.batch_size
    scaler = _grad_scaler(changes, parsed)
    if parsed.is_gpu:
        torch.cuda.reset_peak_memory_stats(parsed.index)
    profiler = StepProfiler(str(parsed), warmup_steps=warmup, trace=trace)
    meter = _energy_meter(str(parsed)) if measure_energy else None
    losses = _steps(workload, model, optimizer, loader, scaler, changes, parsed, profiler, steps, meter, on_step)
    profiler.close()
    energy = meter.reading if meter is not None else None
    peak, peak_how = _peak_memory(parsed)
    return TrainResult(
        target=workload.name,
        device=str(parsed),
        changes=changes.to_dict(),
        batch_size=batch_size,
        losses=losses,
        breakdown=profiler.breakdown(),
        flops_per_step=flops,
        peak_memory_bytes=peak,
        peak_memory_how=peak_how,
        energy=_energy_per_step(energy, steps - warmup) if energy is not None else None,
        notes=notes,
    )


def _steps(workload, model, optimizer, loader, scaler, changes, device, profiler, steps, meter, on_step) -> list[float]:
    import torch

    losses: list[float] = []
    batches = _batches(loader)
    autocast = _autocast(changes, device)
    non_blocking = changes.pin_memory and device.is_gpu
    model.train()
    for step in range(steps):
        if meter is not None and step == profiler.warmup_steps:
            meter.begin()
        with profiler.data():
            inputs, targets = _next_batch(batches, step)
        with profiler.copy():
            inputs = _to_device(inputs, device, changes, non_blocking)
            targets = _to_device(targets, device, NO_CHANGES, non_blocking)
        try:
            with profiler.forward(), autocast:
                loss = workload.loss_fn(model(inputs), targets)
            with profiler.backward():
                (scaler.scale(loss) if scaler else loss).backward()
            with profiler.optimizer():
                if scaler:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        except (torch.OutOfMemoryError, MemoryError) as error:
            raise _oom(step, changes, workload, str(error)) from None
        except RuntimeError as error:
            if "out of memory" in str(error).lower() or "can't allocate memory" in str(error).lower():
                raise _oom(step, changes, workload, str(error)) from None
            raise
        value = float(loss.detach().float().item())
        if not math.isfinite(value):
            raise LossNotFinite(
                f"the loss is {value} at step {step} of {workload.name} with {changes.to_dict() or 'no changes'}; "
                "check the learning rate, the inputs (NaN in the data?) and, with fp16, use a grad scaler"
            )
        losses.append(value)
        profiler.step(samples=_count(inputs), tokens=_tokens(inputs, workload))
        if on_step is not None:
            on_step(step + 1, steps)
    if meter is not None:
        meter.end_now()
    return losses


def _oom(step: int, changes: Changes, workload: Workload, message: str) -> OutOfMemory:
    batch = changes.batch_size or workload.batch_size
    return OutOfMemory(
        f"out of memory at step {step} with batch size {batch} ({message.splitlines()[0][:160]}); "
        "use a smaller batch, activation checkpointing, or bf16"
    )


def _batches(loader: Any) -> Any:
    """Batches forever: the loader again (same shuffled order each epoch's seed) when it runs out."""
    while True:
        produced = False
        for batch in loader:
            produced = True
            yield batch
        if not produced:
            raise LoaderError("the data loader produced no batches: is the dataset empty (len 0)?")


def _next_batch(batches: Any, step: int) -> tuple[Any, Any]:
    try:
        batch = next(batches)
    except LoaderError:
        raise
    except Exception as error:
        raise LoaderError(
            f"the data loader raised {type(error).__name__} at step {step}: {str(error).splitlines()[0][:300]}; "
            "fix the dataset's __getitem__ (with num_workers=0 its traceback comes from the main process)"
        ) from error
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise LoaderError(
            f"a batch is {type(batch).__name__}{f' of {len(batch)}' if hasattr(batch, '__len__') else ''}; "
            "expected (inputs, targets): make the dataset's items (inputs, targets) pairs"
        )
    return batch[0], batch[1]


def _to_device(value: Any, device: Device, changes: Changes, non_blocking: bool) -> Any:
    import torch

    if not isinstance(value, torch.Tensor):
        return value
    if not device.is_cpu:
        value = value.to(str(device), non_blocking=non_blocking)
    if changes.channels_last and value.dim() == 4:
        value = value.contiguous(memory_format=torch.channels_last)
    return value


def _count(inputs: Any) -> int | None:
    return int(inputs.shape[0]) if hasattr(inputs, "shape") and inputs.dim() > 0 else None


def _tokens(inputs: Any, workload: Workload) -> int | None:
    if workload.tokens_per_sample is None:
        return None
    count = _count(inputs)
    return None if count is None else count * workload.tokens_per_sample


# --- applying the changes ---------------------------------------------------------------------


def _prepare_model(workload: Workload, changes: Changes, device: Device, notes: list[str]) -> Any:
    import torch

    model = workload.model
    if not device.is_cpu:
        model = model.to(str(device))
    if changes.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if changes.checkpointing:
        wrapped = checkpoint_blocks(model)
        if wrapped == 0:
            raise TrainError("activation checkpointing needs an nn.ModuleList of blocks in the model; none was found")
        notes.append(f"activation checkpointing on {wrapped} block(s)")
    if _distributed():
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[device.index] if device.is_gpu else None)
    if changes.compile:
        model = torch.compile(model)
    return model


def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def checkpoint_blocks(model: Any) -> int:
    """Recompute each block of every nn.ModuleList in the backward pass instead of keeping its
    activations; returns how many blocks were wrapped."""
    import torch
    from torch.utils.checkpoint import checkpoint

    wrapped = 0
    for module in model.modules():
        if not isinstance(module, torch.nn.ModuleList):
            continue
        for block in module:
            forward = block.forward

            def recomputed(*args: Any, _forward: Any = forward, **kwargs: Any) -> Any:
                return checkpoint(_forward, *args, use_reentrant=False, **kwargs)

            block.forward = recomputed
            wrapped += 1
    return wrapped


def _optimizer(workload: Workload, model: Any, changes: Changes) -> Any:
    """The workload's optimizer, rebuilt over the (moved) parameters with `fused=True` if asked."""
    optimizer = workload.optimizer
    if not changes.fused_optimizer:
        return optimizer
    import inspect

    groups = [dict(group) for group in optimizer.param_groups]
    # Only what the constructor takes: `defaults` also holds internal flags (AdamW's decoupled_weight_decay).
    accepted = set(inspect.signature(type(optimizer).__init__).parameters) - {"self", "params", "fused", "foreach"}
    defaults = {k: v for k, v in optimizer.defaults.items() if k in accepted}
    for group in groups:
        for key in ("fused", "foreach"):
            group.pop(key, None)
    try:
        return type(optimizer)(groups, **defaults, fused=True)
    except (TypeError, RuntimeError, ValueError) as error:
        raise TrainError(f"{type(optimizer).__name__} has no fused implementation here: {error}") from None


def _grad_scaler(changes: Changes, device: Device) -> Any:
    import torch

    if not changes.grad_scaler:
        return None
    if not device.is_gpu:
        raise TrainError("fp16 with a grad scaler is for CUDA devices; on CPUs try bf16 autocast")
    return torch.amp.GradScaler("cuda")


def _autocast(changes: Changes, device: Device) -> Any:
    import contextlib

    import torch

    if changes.amp is None:
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(changes.amp)
    if dtype is None:
        raise TrainError(f"unknown autocast precision {changes.amp!r}; expected bf16 or fp16")
    if dtype is torch.float16 and not device.is_gpu:
        raise TrainError("fp16 autocast is for CUDA devices; on CPUs use bf16")
    return torch.autocast(device_type="cuda" if device.is_gpu else "cpu", dtype=dtype)


def build_loader(workload: Workload, changes: Changes, device: Device) -> Any:
    """A DataLoader over the workload's dataset: shuffled with a fixed seed, so every experiment sees
    the same batches in the same order whatever its workers."""
    import torch
    from torch.utils.data import DataLoader, IterableDataset

    iterable = isinstance(workload.dataset, IterableDataset)
    options: dict[str, Any] = {
        "batch_size": changes.batch_size or workload.batch_size,
        "shuffle": not iterable,
        "drop_last": True,
        "num_workers": changes.num_workers,
        "pin_memory": changes.pin_memory and device.is_gpu,
    }
    if _distributed() and not iterable:
        from torch.utils.data.distributed import DistributedSampler

        options["shuffle"] = False
        options["sampler"] = DistributedSampler(workload.dataset, shuffle=True, seed=SEED, drop_last=True)
    elif not iterable:
        options["generator"] = torch.Generator().manual_seed(SEED)
    if workload.collate_fn is not None:
        options["collate_fn"] = workload.collate_fn
    if changes.num_workers > 0:
        options["persistent_workers"] = changes.persistent_workers
        if changes.prefetch_factor:
            options["prefetch_factor"] = changes.prefetch_factor
        # A DataLoader's workers fork by default on Linux; start them with the interpreter running this.
        options["multiprocessing_context"] = "fork" if sys.platform.startswith("linux") else None
    return DataLoader(workload.dataset, **options)


# --- counting and measuring -------------------------------------------------------------------


def _count_flops(workload: Workload, changes: Changes, device: Device) -> float | None:
    """FLOPs of one forward + backward on one batch, counted by torch.utils.flop_counter on a copy
    of the model (so the timed steps start from the same weights); None where it cannot count."""
    import copy

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    try:
        inputs, targets = next(iter(_first_batch_loader(workload, changes)))
        inputs = _to_device(inputs, device, NO_CHANGES, False)
        targets = _to_device(targets, device, NO_CHANGES, False)
        twin = copy.deepcopy(workload.model).to(str(device))
        with FlopCounterMode(display=False) as counter:
            workload.loss_fn(twin(inputs), targets).backward()
        total = counter.get_total_flops()
    except Exception:  # a model the counter cannot trace keeps its other figures
        return None
    finally:
        torch.manual_seed(SEED)
    return float(total) if total else None


def _first_batch_loader(workload: Workload, changes: Changes) -> Any:
    from torch.utils.data import DataLoader

    options: dict[str, Any] = {"batch_size": changes.batch_size or workload.batch_size}
    if workload.collate_fn is not None:
        options["collate_fn"] = workload.collate_fn
    return DataLoader(workload.dataset, **options)


def _peak_memory(device: Device) -> tuple[int | None, str]:
    if device.is_gpu:
        import torch

        return int(torch.cuda.max_memory_allocated(device.index)), "torch.cuda.max_memory_allocated (tensors)"
    from hwfit.telemetry.memory import peak_rss_bytes

    peak, how = peak_rss_bytes()
    return peak, f"peak resident set of this process ({how}: model, data, Python)"


class _Meter:
    """An energy window over the warm steps, begun and ended by the loop."""

    def __init__(self, device: str) -> None:
        from hwfit.telemetry import EnergyMeter

        self._meter = EnergyMeter(device)
        self.reading: Any = None

    def begin(self) -> None:
        self._meter.begin()

    def end_now(self) -> None:
        self.reading = self._meter.end()


def _energy_meter(device: str) -> _Meter | None:
    try:
        return _Meter(device)
    except Exception:  # no source of any kind: energy stays empty, the rest is measured
        return None


def _energy_per_step(reading: Any, warm_steps: int) -> dict[str, Any]:
    per_step = reading.joules / warm_steps if reading.joules is not None and warm_steps > 0 else None
    return {
        "joules_per_step": per_step,
        "how": reading.how,
        "source": reading.source,
        "formula": reading.formula,
        "reason": reading.reason,
        "average_power_w": reading.average_power_w,
    }


def torch_threads() -> int:
    import torch

    return torch.get_num_threads() or os.cpu_count() or 1
