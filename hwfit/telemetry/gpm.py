"""NVML GPU Performance Monitoring (GPM, Hopper and later): what the SMs did, not only whether a kernel
ran. `nvidia-smi`'s utilization is the share of time *any* kernel ran; GPM's SM activity is the share
of SM cycles with work, occupancy the share of warp slots filled, tensor activity the share of cycles
the tensor pipes were busy. Each metric is computed by NVML between two samples taken at least
100 ms apart. Read-only, without DCGM. Also NVML's per-process SM utilization and memory.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from typing import Any

from hwfit.telemetry import nvml

MIN_GPM_INTERVAL_S = 0.1  # NVML computes GPM metrics between samples at least this far apart

# hwfit name -> (pynvml constant, scale to hwfit's unit): shares 0-1, bytes/s
_GPM_METRICS = {
    "sm_active": ("NVML_GPM_METRIC_SM_UTIL", 0.01),
    "sm_occupancy": ("NVML_GPM_METRIC_SM_OCCUPANCY", 0.01),
    "tensor_active": ("NVML_GPM_METRIC_ANY_TENSOR_UTIL", 0.01),
    "dram_bandwidth": ("NVML_GPM_METRIC_DRAM_BW_UTIL", 0.01),
    "pcie_rx_bytes_per_s": ("NVML_GPM_METRIC_PCIE_RX_PER_SEC", 2**20),  # NVML: MiB/s
    "pcie_tx_bytes_per_s": ("NVML_GPM_METRIC_PCIE_TX_PER_SEC", 2**20),
}


def gpm_support(device_index: int) -> tuple[bool, str]:
    """Whether NVML GPM works on CUDA device `device_index`, and why not."""
    try:
        pynvml = nvml.nvml()
        handle = nvml.handle_for_cuda(device_index)
    except nvml.NvmlUnavailable as error:
        return False, str(error)
    if not hasattr(pynvml, "nvmlGpmQueryDeviceSupport"):
        return False, "this nvidia-ml-py has no GPM calls (pip install -U nvidia-ml-py)"
    try:
        support = pynvml.nvmlGpmQueryDeviceSupport(handle)
    except pynvml.NVMLError as error:
        return False, f"NVML GPM query refused: {error} (GPM needs Hopper or later and driver 520+)"
    if not support.isSupportedDevice:
        return False, "NVML GPM is not supported on this GPU (Hopper or later only)"
    return True, ""


@dataclass(frozen=True)
class GpmWindow:
    """GPM metrics over one interval: shares 0-1 and bytes/s; None where NVML refused the metric."""

    seconds: float
    values: dict[str, float | None]


class GpmReader:
    """Two-sample GPM readings on one GPU: `sample()` returns the metrics since the previous sample."""

    def __init__(self, device_index: int) -> None:
        self.device_index = device_index
        self.supported, self.reason = gpm_support(device_index)
        self._previous: tuple[Any, float] | None = None

    def sample(self) -> GpmWindow | None:
        """Take a GPM sample; the metrics between it and the previous one (None for the first, or when
        the two are under 100 ms apart: the previous is then kept)."""
        if not self.supported:
            return None
        pynvml = nvml.nvml()
        now = time.monotonic()
        if self._previous is not None and now - self._previous[1] < MIN_GPM_INTERVAL_S:
            return None
        try:
            handle = nvml.handle_for_cuda(self.device_index)
            current = pynvml.nvmlGpmSampleGet(handle, pynvml.nvmlGpmSampleAlloc())
        except (pynvml.NVMLError, nvml.NvmlUnavailable) as error:
            self.supported, self.reason = False, f"GPM sample failed: {error}"
            return None
        previous, self._previous = self._previous, (current, now)
        if previous is None:
            return None
        try:
            return GpmWindow(now - previous[1], _metrics_between(pynvml, previous[0], current))
        finally:
            pynvml.nvmlGpmSampleFree(previous[0])

    def close(self) -> None:
        if self._previous is not None:
            try:
                nvml.nvml().nvmlGpmSampleFree(self._previous[0])
            except Exception:  # noqa: BLE001 - freeing at shutdown must not raise over the result
                pass
            self._previous = None


def _metrics_between(pynvml: Any, first: Any, second: Any) -> dict[str, float | None]:
    request = pynvml.c_nvmlGpmMetricsGet_t()
    request.version = pynvml.NVML_GPM_METRICS_GET_VERSION
    request.numMetrics = len(_GPM_METRICS)
    request.sample1 = first
    request.sample2 = second
    names = list(_GPM_METRICS)
    for slot, name in enumerate(names):
        request.metrics[slot].metricId = getattr(pynvml, _GPM_METRICS[name][0])
    pynvml.nvmlGpmMetricsGet(request)
    values: dict[str, float | None] = {}
    for slot, name in enumerate(names):
        metric = request.metrics[slot]
        ok = metric.nvmlReturn == pynvml.NVML_SUCCESS
        values[name] = float(metric.value) * _GPM_METRICS[name][1] if ok else None
    return values


@dataclass(frozen=True)
class GpuProcess:
    """One process on a GPU: NVML's SM utilization share for it (mean of the samples NVML kept since the
    last read) and its device memory."""

    pid: int
    sm_share: float | None
    memory_bytes: int | None


def gpu_processes(device_index: int, since_us: int = 0) -> list[GpuProcess]:
    """The processes NVML sees on CUDA device `device_index` (empty where NVML refuses)."""
    try:
        pynvml = nvml.nvml()
        handle = nvml.handle_for_cuda(device_index)
    except nvml.NvmlUnavailable:
        return []
    memory: dict[int, int | None] = {}
    try:
        for process in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            used = process.usedGpuMemory
            memory[int(process.pid)] = None if used is None else int(used)
    except pynvml.NVMLError:
        pass
    shares: dict[int, list[float]] = {}
    try:
        for sample in pynvml.nvmlDeviceGetProcessUtilization(handle, ctypes.c_ulonglong(since_us).value):
            shares.setdefault(int(sample.pid), []).append(sample.smUtil / 100.0)
    except pynvml.NVMLError:
        pass  # NVML_ERROR_NOT_FOUND: no process sampled since `since_us`
    pids = sorted(set(memory) | set(shares))
    return [
        GpuProcess(pid, sum(shares[pid]) / len(shares[pid]) if pid in shares else None, memory.get(pid)) for pid in pids
    ]
