"""The step profiler for any training loop: `with prof.forward(): ...`, then `prof.step()`.

Each step is split into phases (data wait, host→device copy, forward, backward, optimizer) and
the rest (whatever the loop did outside a phase: logging, `.item()`, synchronisation). On CPUs a
phase is timed with the host clock; on CUDA devices with CUDA events on the current stream, so a
phase is the device time between its boundaries (data wait is then the time the device idled for
the loader, not the host's time around asynchronous work). Off (`enabled=False`), each phase is a
shared no-op context manager and `step()` returns at once.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwfit.core import Device
from hwfit.train.errors import TrainError

PHASES = ("data", "copy", "forward", "backward", "optimizer")
# A step whose data wait is at least this share of the step is data-bound: the device waits for
# the loader a quarter of the time or more, more than any usual knob of the model gains back.
DATA_BOUND_SHARE = 0.25

_OFF = contextlib.nullcontext()


@dataclass(frozen=True)
class StepTiming:
    """One step: seconds per phase and in total; `rest_s` is the step less its phases."""

    total_s: float
    phases_s: dict[str, float]
    samples: int | None = None
    tokens: int | None = None

    @property
    def rest_s(self) -> float:
        return self.total_s - sum(self.phases_s.values())


@dataclass(frozen=True)
class Breakdown:
    """Mean per-step seconds of each phase over the warm steps, and the rates they give."""

    steps: int  # warm steps averaged
    warmup_steps: int  # steps left out at the start
    step_s: float
    phases_s: dict[str, float]
    rest_s: float
    samples_per_s: float | None
    tokens_per_s: float | None
    timer: str  # how the phases were timed
    median_step_s: float = 0.0  # robust to a step that lost its core to another process
    per_step: list[StepTiming] = field(default_factory=list, repr=False)

    def share(self, phase: str) -> float:
        """The share of the mean step that `phase` (or "rest") took."""
        seconds = self.rest_s if phase == "rest" else self.phases_s.get(phase, 0.0)
        return seconds / self.step_s if self.step_s > 0 else 0.0

    @property
    def data_bound(self) -> bool:
        return self.share("data") >= DATA_BOUND_SHARE

    @property
    def bottleneck(self) -> str:
        """The phase (or "rest") that took the most time."""
        names = (*PHASES, "rest")
        return max(names, key=self.share)

    def diagnosis(self) -> str:
        data = self.share("data")
        if self.data_bound:
            return (
                f"data-bound: the step waits for the loader {data:.0%} of the time "
                f"(threshold {DATA_BOUND_SHARE:.0%}); fix the input pipeline first"
            )
        largest = self.bottleneck
        return f"compute-bound: {largest} is the largest part ({self.share(largest):.0%}); data wait {data:.0%}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "warmup_steps": self.warmup_steps,
            "step_ms": self.step_s * 1e3,
            "median_step_ms": self.median_step_s * 1e3,
            "phases_ms": {name: seconds * 1e3 for name, seconds in self.phases_s.items()},
            "rest_ms": self.rest_s * 1e3,
            "shares": {name: self.share(name) for name in (*PHASES, "rest")},
            "samples_per_s": self.samples_per_s,
            "tokens_per_s": self.tokens_per_s,
            "data_bound": self.data_bound,
            "diagnosis": self.diagnosis(),
            "timer": self.timer,
        }


def summarize(timings: list[StepTiming], warmup_steps: int, timer: str) -> Breakdown:
    """Average the steps after `warmup_steps`; raises TrainError when no warm step is left."""
    warm = timings[warmup_steps:]
    if not warm:
        raise TrainError(
            f"no warm steps to average: {len(timings)} step(s) ran and the first {warmup_steps} are warm-up; "
            "run more steps (--steps) or fewer warm-up steps (--warmup)"
        )
    total = sum(t.total_s for t in warm)
    phases = {name: sum(t.phases_s.get(name, 0.0) for t in warm) / len(warm) for name in PHASES}
    step_s = total / len(warm)
    return Breakdown(
        steps=len(warm),
        warmup_steps=warmup_steps,
        step_s=step_s,
        phases_s=phases,
        rest_s=step_s - sum(phases.values()),
        samples_per_s=_rate(warm, "samples", total),
        tokens_per_s=_rate(warm, "tokens", total),
        timer=timer,
        median_step_s=statistics.median(t.total_s for t in warm),
        per_step=list(timings),
    )


def _rate(steps: list[StepTiming], what: str, total_s: float) -> float | None:
    counts = [getattr(t, what) for t in steps]
    if any(c is None for c in counts) or total_s <= 0:
        return None
    return sum(counts) / total_s


class _HostPhase:
    """A phase timed with the host clock (CPU work is synchronous)."""

    __slots__ = ("_profiler", "name", "_start")

    def __init__(self, profiler: StepProfiler, name: str) -> None:
        self._profiler = profiler
        self.name = name
        self._start = 0.0

    def __enter__(self) -> None:
        self._profiler._enter(self.name)
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._profiler._add(self.name, time.perf_counter() - self._start)


class _CudaPhase:
    """A phase timed with a pair of CUDA events, resolved at the end of the step."""

    __slots__ = ("_profiler", "name", "_start")

    def __init__(self, profiler: StepProfiler, name: str) -> None:
        self._profiler = profiler
        self.name = name
        self._start: Any = None

    def __enter__(self) -> None:
        self._profiler._enter(self.name)
        self._start = self._profiler._event()

    def __exit__(self, *exc: object) -> None:
        self._profiler._pending.append((self.name, self._start, self._profiler._event()))
        self._profiler._open = None


class _TracedPhase:
    """A phase that also marks itself in the torch.profiler trace (`hwfit.forward`, ...)."""

    __slots__ = ("_inner", "_mark")

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._mark: Any = None

    def __enter__(self) -> None:
        from torch.profiler import record_function

        self._inner.__enter__()
        self._mark = record_function(f"hwfit.{self._inner.name}")
        self._mark.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._mark.__exit__(*exc)
        self._inner.__exit__(*exc)


class StepProfiler:
    """Phase timers for a training loop. Three lines in a real script:

        prof = StepProfiler(device="cuda:0")
        with prof.forward(): loss = loss_fn(model(x), y)      # and data/copy/backward/optimizer
        prof.step(samples=len(x))                              # then print(prof.breakdown())

    `warmup_steps` are left out of the breakdown; `trace` writes a Chrome/Perfetto trace of
    `trace_steps` steps after one skipped and one warm-up step (bounded: a whole run is gigabytes).
    """

    def __init__(
        self,
        device: str = "cpu",
        enabled: bool = True,
        warmup_steps: int = 2,
        trace: str | Path | None = None,
        trace_steps: int = 3,
    ) -> None:
        self.device = Device.parse(device)
        self.enabled = enabled
        self.warmup_steps = warmup_steps
        self.timings: list[StepTiming] = []
        self._cuda = self.device.is_gpu and enabled
        self._open: str | None = None
        self._phases_s: dict[str, float] = {}
        self._pending: list[tuple[str, Any, Any]] = []
        self._step_start: Any = None
        phase_type = _CudaPhase if self._cuda else _HostPhase
        self._timers: dict[str, Any] = {name: phase_type(self, name) for name in PHASES}
        self._torch_profiler = _bounded_trace(trace, trace_steps) if (trace and enabled) else None
        if self._torch_profiler is not None:  # the phases appear by name in the trace
            self._timers = {name: _TracedPhase(timer) for name, timer in self._timers.items()}
        self.trace_path = Path(trace) if trace else None

    @property
    def timer(self) -> str:
        if self._cuda:
            return "CUDA events on the current stream (device time between phase boundaries)"
        return "host clock (time.perf_counter); CPU work is synchronous"

    # --- the phases ---------------------------------------------------------------------------

    def data(self) -> contextlib.AbstractContextManager:
        """Around `next(loader)`: the time blocked on the loader."""
        return self._timers["data"] if self.enabled else _OFF

    def copy(self) -> contextlib.AbstractContextManager:
        """Around moving the batch to the device."""
        return self._timers["copy"] if self.enabled else _OFF

    def forward(self) -> contextlib.AbstractContextManager:
        """Around the model's forward and the loss."""
        return self._timers["forward"] if self.enabled else _OFF

    def backward(self) -> contextlib.AbstractContextManager:
        return self._timers["backward"] if self.enabled else _OFF

    def optimizer(self) -> contextlib.AbstractContextManager:
        """Around `optimizer.step()` and `zero_grad()`."""
        return self._timers["optimizer"] if self.enabled else _OFF

    def phase(self, name: str) -> contextlib.AbstractContextManager:
        if name not in PHASES:
            raise TrainError(f"unknown phase {name!r}; expected one of {', '.join(PHASES)}")
        return self._timers[name] if self.enabled else _OFF

    # --- steps --------------------------------------------------------------------------------

    def step(self, samples: int | None = None, tokens: int | None = None) -> None:
        """End the current step (call once per optimizer step); `samples`/`tokens` give the rates."""
        if not self.enabled:
            return
        if self._open is not None:
            raise TrainError(f"step() called inside the {self._open!r} phase; close the phase first")
        if self._step_start is None:
            return  # no phase ran since the last step: nothing to record
        if self._cuda:
            end = self._event()
            end.synchronize()
            total_s = self._step_start.elapsed_time(end) / 1e3
            for name, start, stop in self._pending:
                self._phases_s[name] = self._phases_s.get(name, 0.0) + start.elapsed_time(stop) / 1e3
            self._pending.clear()
        else:
            total_s = time.perf_counter() - self._step_start
        self.timings.append(StepTiming(total_s, dict(self._phases_s), samples, tokens))
        self._phases_s.clear()
        self._step_start = None
        if self._torch_profiler is not None:
            self._torch_profiler.step()

    def breakdown(self) -> Breakdown:
        """Mean per-step phases over the warm steps so far."""
        return summarize(self.timings, self.warmup_steps, self.timer)

    def close(self) -> None:
        """Write the trace, if one was asked for and its steps have run."""
        if self._torch_profiler is not None:
            self._torch_profiler.__exit__(None, None, None)
            self._torch_profiler = None

    def __enter__(self) -> StepProfiler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ----------------------------------------------------------------------------

    def _enter(self, name: str) -> None:
        if self._open is not None:
            raise TrainError(f"phase {name!r} entered inside phase {self._open!r}; phases do not nest")
        self._open = name
        if self._step_start is None:
            self._step_start = self._event() if self._cuda else time.perf_counter()

    def _add(self, name: str, seconds: float) -> None:
        self._phases_s[name] = self._phases_s.get(name, 0.0) + seconds
        self._open = None

    def _event(self) -> Any:
        import torch

        event = torch.cuda.Event(enable_timing=True)
        event.record(torch.cuda.current_stream(self.device.index))
        return event


def _bounded_trace(path: str | Path, active_steps: int) -> Any:
    """torch.profiler over one skipped, one warm-up and `active_steps` recorded steps, written once."""
    import torch
    from torch.profiler import ProfilerActivity, profile, schedule

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)

    def write(prof: Any) -> None:
        prof.export_chrome_trace(str(target))

    profiler = profile(
        activities=activities,
        schedule=schedule(wait=1, warmup=1, active=max(1, active_steps), repeat=1),
        on_trace_ready=write,
        record_shapes=False,
    )
    profiler.__enter__()
    return profiler


@contextlib.contextmanager
def profiled(device: str = "cpu", **options: Any) -> Iterator[StepProfiler]:
    """`with profiled("cpu") as prof:` — a StepProfiler that writes its trace (if any) on exit."""
    profiler = StepProfiler(device, **options)
    try:
        yield profiler
    finally:
        profiler.close()
