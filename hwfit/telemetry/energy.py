"""The energy meter: `with EnergyMeter("cuda:0").window() as w: ...` then `w.reading`.

Each reading says how its joules were obtained: `measured` (a hardware energy counter: NVML or
AMD SMI through Zeus, or RAPL), `integrated` (NVML power polled and integrated over time, for
GPUs without a counter), `estimated` (CPU only: catalog power x measured utilization, with the
formula), or null with the reason. An estimate is never labelled measured.

Zeus, measured on this project's 2-core EPYC VM (no GPU, no powercap) with zeus 0.16.0:
- `import zeus.monitor` takes ~1.1 s and imports scipy, scikit-learn and pandas (not torch);
  it prints nothing. `ZeusMonitor(gpu_indices=[], cpu_indices=[])` works (empty windows);
  `cpu_indices=[0]` raises "No CPUs available" where there is no powercap.
- With RAPL (a fake powercap tree), Zeus starts one spawned helper process per RAPL zone to
  track wrap-around (~0.14 CPU-s and 37 MB each, alive until exit); a spawned child re-imports
  `__main__`, and in a script without an `if __name__ == "__main__"` guard it crashed with
  "An attempt has been made to start a new process before ... bootstrapping". Its RAPL path is
  also a hard-coded module constant, and it gives no reason when RAPL is absent or root-only.
So hwfit uses Zeus for GPUs with an energy counter (NVIDIA Volta+, and AMD through AMD SMI,
which hwfit's own reader does not cover) and its own readers elsewhere: RAPL here (a thread
polls for wraps), and NVML directly when Zeus is not installed or cannot be used.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from hwfit.core import ENERGY_PROVENANCE, Device, check_provenance
from hwfit.telemetry import nvml
from hwfit.telemetry._errors import TelemetryError, telemetry_device
from hwfit.telemetry._repeat import Repeater
from hwfit.telemetry._zeus import ZeusGpu, zeus_gpu
from hwfit.telemetry.estimate import CpuPowerModel, process_cpu_seconds
from hwfit.telemetry.rapl import DEFAULT_POWERCAP_ROOT, RaplCounter, Reader, rapl_status, read_sysfs

RAPL_POLL_S = 1.0  # far below the counter's wrap period (minutes at full load)
POWER_POLL_S = 0.05


@dataclass(frozen=True)
class EnergyReading:
    """The energy of one window on one device, and how it was obtained."""

    device: str  # "cpu" | "cuda:N"
    seconds: float  # window length, measured
    joules: float | None  # None when neither a counter nor an estimate is possible
    how: str | None  # "measured" | "integrated" | "estimated" | None
    source: str  # what produced the figure, e.g. "zeus: NVML total energy counter"
    formula: str | None  # for "estimated": the formula with its numbers filled in
    reason: str | None  # why null, or why only estimated
    average_power_w: float | None
    utilization: float | None  # measured busy share used by the estimate (0-1)

    def __post_init__(self) -> None:
        check_provenance(self.how, ENERGY_PROVENANCE, "EnergyReading", nullable=True)
        if (self.how is None) != (self.joules is None):
            raise ValueError("EnergyReading: joules and how must both be set or both be None")

    def joules_per(self, count: int) -> float | None:
        """Joules per item (sample, request) when `count` items ran in the window; None without joules."""
        if count <= 0:
            raise TelemetryError(f"joules_per needs a positive count of items, got {count}")
        return self.joules / count if self.joules is not None else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Outcome:
    joules: float | None
    how: str | None
    reason: str | None = None
    formula: str | None = None
    utilization: float | None = None


class _Source(Protocol):
    source: str

    def begin(self) -> None: ...

    def end(self, seconds: float) -> _Outcome: ...


def _from_counter(joules: float, seconds: float, how: str) -> _Outcome:
    """A counter that did not move in a non-empty window gave no information, not zero joules."""
    if joules <= 0.0 and seconds > 0.0:
        return _Outcome(
            None,
            None,
            reason=f"the energy counter did not advance in the {seconds:.3g} s window "
            f"(shorter than its update period): measure a longer window",
        )
    return _Outcome(joules, how)


# --- sources -----------------------------------------------------------------------------------


class _NoSource:
    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self._reason = reason

    def begin(self) -> None:
        pass

    def end(self, seconds: float) -> _Outcome:
        return _Outcome(None, None, reason=self._reason)


class _RaplSource:
    """RAPL package counters, polled every second in a thread so a wrap is never missed."""

    def __init__(self, counter: RaplCounter) -> None:
        self._counter = counter
        self.source = f"{counter.describe()}; whole package(s): other processes and idle power included"
        self._start_j = 0.0
        self._watch: Repeater | None = None

    def begin(self) -> None:
        self._start_j = self._counter.poll()
        self._watch = Repeater(self._counter.poll, RAPL_POLL_S, name="hwfit-rapl-watch")
        self._watch.start()

    def end(self, seconds: float) -> _Outcome:
        assert self._watch is not None
        self._watch.stop()
        try:
            joules = self._counter.poll() - self._start_j
        except (OSError, ValueError) as error:
            return _Outcome(None, None, reason=f"RAPL counter unreadable at the end of the window: {error}")
        if self._watch.error is not None:
            return _Outcome(None, None, reason=f"RAPL counter unreadable during the window: {self._watch.error}")
        return _from_counter(joules, seconds, "measured")


class _EstimateSource:
    """Catalog CPU power x this process's CPU utilization over the window."""

    def __init__(self, model: CpuPowerModel, why_no_counter: str) -> None:
        self._model = model
        self._why = why_no_counter
        self.source = model.source
        self._start_cpu_s = 0.0

    def begin(self) -> None:
        self._start_cpu_s = process_cpu_seconds()

    def end(self, seconds: float) -> _Outcome:
        estimate = self._model.estimate(seconds, process_cpu_seconds() - self._start_cpu_s)
        reason = f"estimated, not measured: {self._why}"
        if estimate is None:
            return _Outcome(None, None, reason=f"{self._why}; and no estimate: the catalog has no cpu_power figures")
        return _Outcome(
            estimate.joules, "estimated", reason=reason, formula=estimate.formula, utilization=estimate.utilization
        )


class _ZeusSource:
    def __init__(self, gpu: ZeusGpu) -> None:
        self._gpu = gpu
        self.source = f"zeus: {gpu.counter}"
        self._window: str | None = None

    def begin(self) -> None:
        self._window = self._gpu.begin()

    def end(self, seconds: float) -> _Outcome:
        assert self._window is not None
        return _from_counter(self._gpu.end(self._window), seconds, "measured")


class _NvmlCounterSource:
    def __init__(self, handle: Any, why_not_zeus: str) -> None:
        self._handle = handle
        self.source = f"NVML total energy counter (hwfit reader; not zeus: {why_not_zeus})"
        self._start_j: float | None = None

    def begin(self) -> None:
        self._start_j = nvml.total_energy_j(self._handle)

    def end(self, seconds: float) -> _Outcome:
        end_j = nvml.total_energy_j(self._handle)
        if self._start_j is None or end_j is None:
            return _Outcome(None, None, reason="NVML refused the total-energy counter during the window")
        return _from_counter(end_j - self._start_j, seconds, "measured")


class _NvmlPowerSource:
    """For GPUs without an energy counter: NVML power polled in a thread, integrated by trapezoids."""

    def __init__(self, handle: Any, why_no_counter: str) -> None:
        self._handle = handle
        self._why = why_no_counter
        self.source = f"NVML power polled every {POWER_POLL_S * 1000:g} ms and integrated"
        self._samples: list[tuple[float, float]] = []
        self._poller: Repeater | None = None

    def _sample(self) -> None:
        power = nvml.power_w(self._handle)
        if power is not None:
            self._samples.append((time.perf_counter(), power))

    def begin(self) -> None:
        self._samples = []
        self._sample()
        self._poller = Repeater(self._sample, POWER_POLL_S, name="hwfit-nvml-power")
        self._poller.start()

    def end(self, seconds: float) -> _Outcome:
        assert self._poller is not None
        self._poller.stop()
        self._sample()
        if len(self._samples) < 2:
            return _Outcome(None, None, reason=f"{self._why}; and NVML gave fewer than 2 power samples")
        joules = integrate_power(self._samples)
        return _Outcome(joules, "integrated", reason=self._why)


def integrate_power(samples: list[tuple[float, float]]) -> float:
    """Trapezoid integral of (time_s, power_w) samples, in joules."""
    joules = 0.0
    for (t0, p0), (t1, p1) in zip(samples, samples[1:], strict=False):
        joules += (t1 - t0) * (p0 + p1) / 2
    return joules


# --- choosing a source -------------------------------------------------------------------------


def _cpu_source(allow_estimate: bool, powercap_root: Path, reader: Reader) -> _Source:
    status = rapl_status(powercap_root, reader)
    if status.usable:
        return _RaplSource(RaplCounter(status.zones, reader))
    assert status.reason is not None
    if not allow_estimate:
        return _NoSource("none", f"{status.reason}; estimates disabled (allow_estimate=False)")
    return _EstimateSource(CpuPowerModel(), why_no_counter=status.reason)


def _cuda_source(device: Device, prefer_zeus: bool) -> _Source:
    assert device.index is not None
    why_not_zeus = "not asked for (prefer_zeus=False)"
    if prefer_zeus:
        gpu, why = zeus_gpu(device.index)
        if gpu is not None:
            return _ZeusSource(gpu)
        why_not_zeus = why or "unknown"
    try:
        handle = nvml.handle_for_cuda(device.index)
    except nvml.NvmlUnavailable as error:
        return _NoSource(
            "none", f"no GPU energy source for {device}: {error}; zeus: {why_not_zeus} (GPUs are never estimated)"
        )
    if nvml.total_energy_j(handle) is not None:
        return _NvmlCounterSource(handle, why_not_zeus)
    if nvml.power_w(handle) is not None:
        return _NvmlPowerSource(handle, f"{device} has no NVML total-energy counter (pre-Volta): power integrated")
    return _NoSource(
        "none",
        f"NVML gives neither an energy counter nor power for {device}; zeus: {why_not_zeus} (GPUs are never estimated)",
    )


# --- the meter ---------------------------------------------------------------------------------


class _Window:
    """What `EnergyMeter.window()` yields; `reading` is set when the block ends (even on error)."""

    def __init__(self) -> None:
        self.reading: EnergyReading | None = None


class EnergyMeter:
    """Energy of windows of work on one device. Choose the source once; measure many windows.

    `allow_estimate=False` turns the CPU estimate off: where no counter exists, joules are None.
    `prefer_zeus=False` uses hwfit's own NVML reader on GPUs; `powercap_root` and `rapl_reader`
    let tests point the RAPL reader at a fake sysfs tree.
    """

    def __init__(
        self,
        device: str = "cpu",
        allow_estimate: bool = True,
        *,
        prefer_zeus: bool = True,
        powercap_root: Path = DEFAULT_POWERCAP_ROOT,
        rapl_reader: Reader = read_sysfs,
    ) -> None:
        self._device = telemetry_device(device)
        self.device = str(self._device)
        if self._device.kind == "cpu":
            self._source: _Source = _cpu_source(allow_estimate, Path(powercap_root), rapl_reader)
        else:
            self._source = _cuda_source(self._device, prefer_zeus)
        self._started_at: float | None = None

    @property
    def source(self) -> str:
        return self._source.source

    def begin(self) -> None:
        if self._started_at is not None:
            raise TelemetryError(f"energy meter for {self.device}: begin() called twice without end()")
        self._source.begin()
        self._started_at = time.perf_counter()

    def end(self) -> EnergyReading:
        if self._started_at is None:
            raise TelemetryError(f"energy meter for {self.device}: end() called before begin()")
        seconds = time.perf_counter() - self._started_at
        self._started_at = None
        outcome = self._source.end(seconds)
        power = outcome.joules / seconds if outcome.joules is not None and seconds > 0 else None
        return EnergyReading(
            device=self.device,
            seconds=seconds,
            joules=outcome.joules,
            how=outcome.how,
            source=self._source.source,
            formula=outcome.formula,
            reason=outcome.reason,
            average_power_w=power,
            utilization=outcome.utilization,
        )

    @contextmanager
    def window(self) -> Iterator[_Window]:
        """`with meter.window() as w: work()` then `w.reading`."""
        window = _Window()
        self.begin()
        try:
            yield window
        finally:
            window.reading = self.end()
