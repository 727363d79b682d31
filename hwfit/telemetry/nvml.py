"""NVIDIA readings through NVML (nvidia-ml-py): CUDA index to NVML handle, energy counter, power,
utilization and memory. Read-only: only Get calls. Each reading is None where NVML refuses it.
"""

import os
import threading
from typing import Any


class NvmlUnavailable(Exception):
    """NVML cannot be used here; the message says why (no package, no driver, no such GPU)."""


_init_lock = threading.Lock()
_initialised = False


def nvml() -> Any:
    """The pynvml module, initialised once per process. Raises NvmlUnavailable with the reason."""
    global _initialised
    try:
        import pynvml
    except ImportError:
        raise NvmlUnavailable("nvidia-ml-py not installed: pip install nvidia-ml-py") from None
    with _init_lock:
        if _initialised:
            return pynvml
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError_LibraryNotFound:
            raise NvmlUnavailable("NVML not found: no NVIDIA driver here (libnvidia-ml.so is missing)") from None
        except pynvml.NVMLError_DriverNotLoaded:
            raise NvmlUnavailable("NVIDIA driver installed but not loaded") from None
        except pynvml.NVMLError as error:
            raise NvmlUnavailable(f"NVML failed to initialise: {error}") from None
        _initialised = True
    return pynvml


def visible_cuda_count() -> int:
    """How many CUDA devices this process sees (CUDA_VISIBLE_DEVICES applied). Raises NvmlUnavailable."""
    pynvml = nvml()
    try:
        count = pynvml.nvmlDeviceGetCount()
    except pynvml.NVMLError as error:
        raise NvmlUnavailable(f"NVML could not count GPUs: {error}") from None
    visible = _visible_entries()
    return count if visible is None else min(count, len(visible))


def handle_for_cuda(cuda_index: int) -> Any:
    """The NVML handle of CUDA device `cuda_index`, honouring CUDA_VISIBLE_DEVICES (indices or UUIDs).

    Without CUDA_VISIBLE_DEVICES, CUDA and NVML agree on order when CUDA_DEVICE_ORDER=PCI_BUS_ID
    or the GPUs are identical. Raises NvmlUnavailable when there is no such device, or when NVML
    refuses one of the calls (a GPU fallen off the bus raises NVMLError_GpuIsLost, for example).
    """
    pynvml = nvml()
    try:
        return _handle_for_cuda(pynvml, cuda_index)
    except pynvml.NVMLError as error:
        raise NvmlUnavailable(f"NVML refused cuda:{cuda_index}: {error}") from None


def _handle_for_cuda(pynvml: Any, cuda_index: int) -> Any:
    count = pynvml.nvmlDeviceGetCount()
    visible = _visible_entries()
    if visible is None:
        if cuda_index >= count:
            raise NvmlUnavailable(f"cuda:{cuda_index} does not exist: NVML sees {count} GPU(s)")
        return pynvml.nvmlDeviceGetHandleByIndex(cuda_index)
    if cuda_index >= len(visible):
        raise NvmlUnavailable(f"cuda:{cuda_index} does not exist: CUDA_VISIBLE_DEVICES lists {len(visible)}")
    entry = visible[cuda_index]
    if entry.isdigit():
        return pynvml.nvmlDeviceGetHandleByIndex(int(entry))
    if entry.startswith("GPU-"):
        for index in range(count):
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(index)
                uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
            except pynvml.NVMLError:
                continue  # another GPU NVML cannot read is not the one asked for
            if uuid.startswith(entry):
                return handle
    raise NvmlUnavailable(
        f"CUDA_VISIBLE_DEVICES entry {entry!r} names no whole GPU NVML knows (MIG instances are not metered)"
    )


def _visible_entries() -> list[str] | None:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return None
    return [entry.strip() for entry in visible.split(",") if entry.strip()]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def device_name(handle: Any) -> str | None:
    return _query(lambda: _text(nvml().nvmlDeviceGetName(handle)))


def total_energy_j(handle: Any) -> float | None:
    """NVML's total-energy counter (Volta and newer) in joules since the driver loaded; None if unsupported."""
    return _query(lambda: nvml().nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0)


def power_w(handle: Any) -> float | None:
    """Board power draw in watts (on Ampere and newer NVML averages it over about one second)."""
    return _query(lambda: nvml().nvmlDeviceGetPowerUsage(handle) / 1000.0)


def utilization(handle: Any) -> float | None:
    """Share of the last sample period in which a kernel ran (0-1): busy, not useful work."""
    return _query(lambda: nvml().nvmlDeviceGetUtilizationRates(handle).gpu / 100.0)


def memory_used_bytes(handle: Any) -> int | None:
    """Device memory in use by every process on the GPU."""
    return _query(lambda: int(nvml().nvmlDeviceGetMemoryInfo(handle).used))


def _query(read: Any) -> Any:
    """One reading; None where NVML refuses it (unsupported, or the GPU is lost): never raises."""
    try:
        pynvml = nvml()
    except NvmlUnavailable:
        return None
    try:
        return read()
    except pynvml.NVMLError:
        return None
