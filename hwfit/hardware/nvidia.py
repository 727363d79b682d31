"""NVIDIA GPU discovery through NVML (pynvml from nvidia-ml-py). Read-only: only Get calls.

Never sets clocks, power limits, MIG or persistence mode. Where NVML or the driver is absent the
answer is an empty list and a reason; a single query NVML refuses leaves one field None and a note.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# CUDA cores per SM by compute-capability major.minor: NVML reports cores, not SMs, on full GPUs.
# From the CUDA C Programming Guide, "Arithmetic Instructions" throughput table (FP32 lanes/SM).
_CORES_PER_SM = {
    (7, 0): 64,
    (7, 2): 64,
    (7, 5): 64,
    (8, 0): 64,
    (8, 6): 128,
    (8, 7): 128,
    (8, 9): 128,
    (9, 0): 128,
    (10, 0): 128,
    (10, 3): 128,
    (12, 0): 128,
}


@dataclass(frozen=True)
class GpuInfo:
    """One NVIDIA GPU as NVML reports it; fields NVML refused are None and explained in `notes`."""

    index: int  # NVML index (PCI bus order)
    name: str
    uuid: str | None
    pci_bus_id: str | None
    memory_total_bytes: int | None
    sm_count: int | None
    sm_count_source: str  # how sm_count was obtained, or why it is None
    compute_capability: str | None  # "9.0"
    sm_clock_mhz: int | None
    sm_clock_max_mhz: int | None
    memory_clock_mhz: int | None
    memory_clock_max_mhz: int | None
    power_limit_w: float | None  # the enforced limit
    power_limit_default_w: float | None
    pcie_gen: int | None
    pcie_width: int | None
    pcie_max_gen: int | None
    pcie_max_width: int | None
    mig_enabled: bool | None
    driver_version: str | None
    cuda_driver_version: str | None  # "12.4": the highest CUDA the driver supports
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "uuid": self.uuid,
            "pci_bus_id": self.pci_bus_id,
            "memory_total_bytes": self.memory_total_bytes,
            "sm_count": self.sm_count,
            "sm_count_source": self.sm_count_source,
            "compute_capability": self.compute_capability,
            "sm_clock_mhz": self.sm_clock_mhz,
            "sm_clock_max_mhz": self.sm_clock_max_mhz,
            "memory_clock_mhz": self.memory_clock_mhz,
            "memory_clock_max_mhz": self.memory_clock_max_mhz,
            "power_limit_w": self.power_limit_w,
            "power_limit_default_w": self.power_limit_default_w,
            "pcie_gen": self.pcie_gen,
            "pcie_width": self.pcie_width,
            "pcie_max_gen": self.pcie_max_gen,
            "pcie_max_width": self.pcie_max_width,
            "mig_enabled": self.mig_enabled,
            "driver_version": self.driver_version,
            "cuda_driver_version": self.cuda_driver_version,
            "notes": list(self.notes),
        }


def discover_gpus() -> tuple[list[GpuInfo], str | None]:
    """All NVIDIA GPUs NVML sees, and a reason when there are none. Never raises."""
    try:
        import pynvml
    except ImportError:
        return [], "nvidia-ml-py not installed: pip install nvidia-ml-py"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        return [], "NVML not found: no NVIDIA driver on this machine (libnvidia-ml.so is missing)"
    except pynvml.NVMLError_DriverNotLoaded:
        return [], "NVIDIA driver installed but not loaded (nvidia kernel module missing)"
    except pynvml.NVMLError as error:
        return [], f"NVML failed to initialise: {error}"
    try:
        return _all_gpus(pynvml)
    except pynvml.NVMLError as error:
        return [], f"NVML failed while listing GPUs: {error}"
    finally:
        pynvml.nvmlShutdown()


def _all_gpus(pynvml: Any) -> tuple[list[GpuInfo], str | None]:
    count = pynvml.nvmlDeviceGetCount()
    if count == 0:
        return [], "NVML found the driver but no GPU (none attached, or hidden from this container)"
    driver = _decode(_query(pynvml, pynvml.nvmlSystemGetDriverVersion, [], "driver_version"))
    cuda = _cuda_version(_query(pynvml, pynvml.nvmlSystemGetCudaDriverVersion, [], "cuda_driver_version"))
    gpus: list[GpuInfo] = []
    problems: list[str] = []
    for index in range(count):
        try:
            gpus.append(_one_gpu(pynvml, index, driver, cuda))
        except pynvml.NVMLError as error:
            # A GPU that fell off the bus must not hide the healthy ones.
            problems.append(f"GPU {index} unreadable: {error}")
    return gpus, "; ".join(problems) or None


def _one_gpu(pynvml: Any, index: int, driver: str | None, cuda: str | None) -> GpuInfo:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    notes: list[str] = []

    def query(fn: Callable[..., Any], *args: Any, field: str) -> Any:
        return _query(pynvml, fn, [handle, *args], field, notes)

    memory = query(pynvml.nvmlDeviceGetMemoryInfo, field="memory_total_bytes")
    capability = query(pynvml.nvmlDeviceGetCudaComputeCapability, field="compute_capability")
    sm_count, sm_source = _sm_count(pynvml, handle, capability, notes)
    mig = query(pynvml.nvmlDeviceGetMigMode, field="mig_enabled")
    pci = query(pynvml.nvmlDeviceGetPciInfo, field="pci_bus_id")
    return GpuInfo(
        index=index,
        name=_decode(query(pynvml.nvmlDeviceGetName, field="name")) or f"NVIDIA GPU {index}",
        uuid=_decode(query(pynvml.nvmlDeviceGetUUID, field="uuid")),
        pci_bus_id=_decode(pci.busId) if pci is not None else None,
        memory_total_bytes=int(memory.total) if memory is not None else None,
        sm_count=sm_count,
        sm_count_source=sm_source,
        compute_capability=f"{capability[0]}.{capability[1]}" if capability else None,
        sm_clock_mhz=query(pynvml.nvmlDeviceGetClockInfo, pynvml.NVML_CLOCK_SM, field="sm_clock_mhz"),
        sm_clock_max_mhz=query(pynvml.nvmlDeviceGetMaxClockInfo, pynvml.NVML_CLOCK_SM, field="sm_clock_max_mhz"),
        memory_clock_mhz=query(pynvml.nvmlDeviceGetClockInfo, pynvml.NVML_CLOCK_MEM, field="memory_clock_mhz"),
        memory_clock_max_mhz=query(
            pynvml.nvmlDeviceGetMaxClockInfo, pynvml.NVML_CLOCK_MEM, field="memory_clock_max_mhz"
        ),
        power_limit_w=_milliwatts_to_w(query(pynvml.nvmlDeviceGetEnforcedPowerLimit, field="power_limit_w")),
        power_limit_default_w=_milliwatts_to_w(
            query(pynvml.nvmlDeviceGetPowerManagementDefaultLimit, field="power_limit_default_w")
        ),
        pcie_gen=query(pynvml.nvmlDeviceGetCurrPcieLinkGeneration, field="pcie_gen"),
        pcie_width=query(pynvml.nvmlDeviceGetCurrPcieLinkWidth, field="pcie_width"),
        pcie_max_gen=query(pynvml.nvmlDeviceGetMaxPcieLinkGeneration, field="pcie_max_gen"),
        pcie_max_width=query(pynvml.nvmlDeviceGetMaxPcieLinkWidth, field="pcie_max_width"),
        # nvmlDeviceGetMigMode returns (current, pending); current decides what runs now.
        mig_enabled=bool(mig[0] == pynvml.NVML_DEVICE_MIG_ENABLE) if mig is not None else None,
        driver_version=driver,
        cuda_driver_version=cuda,
        notes=tuple(notes),
    )


def _sm_count(pynvml: Any, handle: Any, capability: Any, notes: list[str]) -> tuple[int | None, str]:
    """SMs: NVML attributes (answered for MIG instances), else CUDA cores / cores-per-SM of the arch."""
    try:
        attributes = pynvml.nvmlDeviceGetAttributes(handle)
        if attributes.multiprocessorCount:
            return int(attributes.multiprocessorCount), "measured: nvmlDeviceGetAttributes.multiprocessorCount"
    except pynvml.NVMLError:
        pass  # full (non-MIG) GPUs answer NOT_SUPPORTED here; fall through to the derivation
    cores = _query(pynvml, pynvml.nvmlDeviceGetNumGpuCores, [handle], "cuda_cores", notes)
    if not cores or not capability:
        return None, "unknown: NVML gave neither SM attributes nor CUDA cores and compute capability"
    per_sm = _CORES_PER_SM.get((int(capability[0]), int(capability[1])))
    if per_sm is None:
        return None, f"unknown: no cores-per-SM figure for compute capability {capability[0]}.{capability[1]}"
    return cores // per_sm, f"computed: {cores} CUDA cores / {per_sm} cores per SM (cc {capability[0]}.{capability[1]})"


def _query(pynvml: Any, fn: Callable[..., Any], args: list[Any], field: str, notes: list[str] | None = None) -> Any:
    """Call one NVML getter; on refusal return None and note which field and why."""
    try:
        return fn(*args)
    except pynvml.NVMLError as error:
        if notes is not None:
            notes.append(f"{field}: {error}")
        return None
    except AttributeError:
        # An older nvidia-ml-py lacks this getter.
        if notes is not None:
            notes.append(f"{field}: not available in this nvidia-ml-py")
        return None


def _decode(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _cuda_version(version: int | None) -> str | None:
    """NVML encodes CUDA 12.4 as 12040."""
    if not version:
        return None
    return f"{version // 1000}.{(version % 1000) // 10}"


def _milliwatts_to_w(milliwatts: int | None) -> float | None:
    return milliwatts / 1000 if milliwatts is not None else None


def gpu_for_cuda_index(cuda_index: int, gpus: list[GpuInfo]) -> GpuInfo | None:
    """The NVML GPU behind CUDA device `cuda_index`, honouring CUDA_VISIBLE_DEVICES.

    CUDA_VISIBLE_DEVICES lists NVML-style indices or UUIDs ('GPU-8f2c...', prefixes allowed).
    Without it CUDA and NVML agree on order when CUDA_DEVICE_ORDER=PCI_BUS_ID or the GPUs are
    identical; on a mixed box with CUDA's default FASTEST_FIRST order the mapping may be off.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return gpus[cuda_index] if cuda_index < len(gpus) else None
    entries = [entry.strip() for entry in visible.split(",") if entry.strip()]
    if cuda_index >= len(entries):
        return None
    entry = entries[cuda_index]
    if entry.isdigit():
        wanted = int(entry)
        return next((gpu for gpu in gpus if gpu.index == wanted), None)
    if entry.startswith("GPU-"):
        return next((gpu for gpu in gpus if gpu.uuid and gpu.uuid.startswith(entry)), None)
    return None  # MIG-... instances have no whole-GPU entry
