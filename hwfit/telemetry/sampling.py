"""Instantaneous device samples (utilization, memory, power, energy) and a background sampler that
summarises them over a window: mean utilization, peak memory, mean power. For profiling points
and for the server's Prometheus metrics.

cuda: NVML, device-wide (every process on the GPU). cpu: psutil, system-wide busy share since the
previous sample and used memory (total - available); power and energy only where RAPL is readable.
"""

import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from hwfit.core import Device
from hwfit.telemetry import nvml
from hwfit.telemetry._errors import TelemetryError, telemetry_device
from hwfit.telemetry._repeat import Repeater
from hwfit.telemetry.rapl import DEFAULT_POWERCAP_ROOT, RaplCounter, rapl_status

_FIRST_CPU_INTERVAL_S = 0.1  # a busy share needs two readings; the first sample waits this long


@dataclass(frozen=True)
class DeviceSample:
    """One reading of a device; None where the device or platform does not report a figure."""

    device: str
    timestamp_s: float  # time.time()
    utilization: float | None  # busy share 0-1 (cpu: system-wide since the previous sample)
    memory_used_bytes: int | None  # device-wide (cpu: total - available)
    power_w: float | None
    energy_j_total: float | None  # NVML: since the driver loaded; RAPL: since this process first read it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _CpuTracker:
    """System CPU busy share and RAPL power between consecutive samples."""

    def __init__(self, powercap_root: Path = DEFAULT_POWERCAP_ROOT) -> None:
        self._lock = threading.Lock()
        self._last_times: Any = None
        self._last_utilization: float | None = None
        status = rapl_status(powercap_root)
        self._rapl = RaplCounter(status.zones) if status.usable else None
        self._last_energy: tuple[float, float] | None = None  # (perf_counter, joules)

    def prime(self) -> None:
        """Take the first readings now, so the next sample covers the time from here."""
        with self._lock:
            self._last_times = psutil.cpu_times()
            self._rapl_reading()

    def sample(self) -> DeviceSample:
        with self._lock:
            if self._last_times is None:
                self._last_times = psutil.cpu_times()
                time.sleep(_FIRST_CPU_INTERVAL_S)
            now_times = psutil.cpu_times()
            utilization = busy_share(self._last_times, now_times)
            if utilization is None:
                # Read within one clock tick of the last sample (two scrapes back to back): the
                # counters have not moved. Report the last window's share and keep its start, so
                # the next sample covers the longer window.
                utilization = self._last_utilization
            else:
                self._last_times = now_times
                self._last_utilization = utilization
            power_w, energy_j = self._rapl_reading()
        memory = psutil.virtual_memory()
        return DeviceSample(
            device="cpu",
            timestamp_s=time.time(),
            utilization=utilization,
            memory_used_bytes=int(memory.total - memory.available),
            power_w=power_w,
            energy_j_total=energy_j,
        )

    def _rapl_reading(self) -> tuple[float | None, float | None]:
        if self._rapl is None:
            return None, None
        try:
            energy_j = self._rapl.poll()
        except (OSError, ValueError):
            return None, None
        now = time.perf_counter()
        power_w = None
        if self._last_energy is not None and now > self._last_energy[0]:
            power_w = (energy_j - self._last_energy[1]) / (now - self._last_energy[0])
        self._last_energy = (now, energy_j)
        return power_w, energy_j


def busy_share(before: Any, after: Any) -> float | None:
    """1 - idle share of all CPU time between two psutil.cpu_times() readings (iowait counts as idle)."""
    total = sum(after) - sum(before)
    if total <= 0:
        return None
    idle = (after.idle - before.idle) + (getattr(after, "iowait", 0.0) - getattr(before, "iowait", 0.0))
    return min(1.0, max(0.0, 1.0 - idle / total))


def _sample_cuda(device: Device) -> DeviceSample:
    assert device.index is not None
    now = time.time()
    try:
        handle = nvml.handle_for_cuda(device.index)
    except nvml.NvmlUnavailable:
        return DeviceSample(str(device), now, None, None, None, None)
    return DeviceSample(
        device=str(device),
        timestamp_s=now,
        utilization=nvml.utilization(handle),
        memory_used_bytes=nvml.memory_used_bytes(handle),
        power_w=nvml.power_w(handle),
        energy_j_total=nvml.total_energy_j(handle),
    )


_shared_cpu_tracker: _CpuTracker | None = None
_shared_lock = threading.Lock()


def sample_device(device: str) -> DeviceSample:
    """One sample of `device` ('cpu' or 'cuda:N'). The first cpu sample in a process takes 0.1 s."""
    global _shared_cpu_tracker
    name = telemetry_device(device)
    if name.kind == "cuda":
        return _sample_cuda(name)
    with _shared_lock:
        if _shared_cpu_tracker is None:
            _shared_cpu_tracker = _CpuTracker()
        tracker = _shared_cpu_tracker
    return tracker.sample()


@dataclass(frozen=True)
class UtilizationStats:
    """A window's samples summarised; None where no sample carried the figure."""

    device: str
    samples: int
    mean_utilization: float | None
    peak_memory_used_bytes: int | None
    mean_power_w: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarise(device: str, samples: list[DeviceSample]) -> UtilizationStats:
    utilizations = [s.utilization for s in samples if s.utilization is not None]
    memories = [s.memory_used_bytes for s in samples if s.memory_used_bytes is not None]
    powers = [s.power_w for s in samples if s.power_w is not None]
    return UtilizationStats(
        device=device,
        samples=len(samples),
        mean_utilization=sum(utilizations) / len(utilizations) if utilizations else None,
        peak_memory_used_bytes=max(memories) if memories else None,
        mean_power_w=sum(powers) / len(powers) if powers else None,
    )


class UtilizationSampler:
    """Samples `device` every `interval_s` on a background thread between start() and stop().

    `with UtilizationSampler("cuda:0") as sampler: work()` then `sampler.stats`. A sample is also
    taken at stop (and on cuda at start), so even a window shorter than one interval has one.
    """

    def __init__(self, device: str = "cpu", interval_s: float = 0.1) -> None:
        self._device = telemetry_device(device)
        self.device = str(self._device)
        self.interval_s = interval_s
        self.samples: list[DeviceSample] = []
        self.stats: UtilizationStats | None = None
        self._cpu_tracker: _CpuTracker | None = None
        self._repeater: Repeater | None = None

    def _sample(self) -> None:
        if self._cpu_tracker is not None:
            self.samples.append(self._cpu_tracker.sample())
        else:
            self.samples.append(_sample_cuda(self._device))

    def start(self) -> None:
        if self._repeater is not None:
            raise TelemetryError(f"utilization sampler for {self.device}: start() called twice")
        self.samples = []
        self.stats = None
        if self._device.kind == "cpu":
            # A private tracker: its busy share covers this sampler's intervals, not another caller's.
            self._cpu_tracker = _CpuTracker()
            self._cpu_tracker.prime()
        else:
            self._sample()
        self._repeater = Repeater(self._sample, self.interval_s, name=f"hwfit-sampler-{self.device}")
        self._repeater.start()

    def stop(self) -> UtilizationStats:
        if self._repeater is None:
            raise TelemetryError(f"utilization sampler for {self.device}: stop() called before start()")
        self._repeater.stop()
        self._repeater = None
        self._sample()
        self.stats = summarise(self.device, self.samples)
        return self.stats

    def __enter__(self) -> "UtilizationSampler":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
