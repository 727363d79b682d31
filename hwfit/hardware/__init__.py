"""The hardware layer: what this machine is (CPU, NVIDIA GPUs, runtimes), what its datasheets
promise (the spec catalog), and what it really reaches (microbenchmarks).

Imports only hwfit.core. Everything public is listed in `__all__`.
"""

from hwfit.core import Figure, format_si
from hwfit.hardware._errors import BenchmarkError, CatalogError, UnknownDevice
from hwfit.hardware.catalog import (
    Catalog,
    CpuPowerSpec,
    DeviceSpec,
    cpu_peak_flops,
    cpu_power_spec,
    load_catalog,
    spec_for_gpu,
)
from hwfit.hardware.cpu import ISA_FEATURES, CacheLevel, CpuInfo, discover_cpu
from hwfit.hardware.inventory import SCHEMA, HardwareInventory, device_names, discover, peak_flops
from hwfit.hardware.microbench import Ceiling, measure_ceilings
from hwfit.hardware.nvidia import GpuInfo, discover_gpus, gpu_for_cuda_index
from hwfit.hardware.runtimes import (
    RuntimeDevice,
    RuntimeReport,
    clear_runtime_cache,
    openvino_devices,
    ort_providers,
    torch_cuda_available,
    torch_report,
)

__all__ = [
    "BenchmarkError",
    "CacheLevel",
    "Catalog",
    "CatalogError",
    "Ceiling",
    "CpuInfo",
    "DeviceSpec",
    "Figure",
    "GpuInfo",
    "HardwareInventory",
    "ISA_FEATURES",
    "RuntimeDevice",
    "RuntimeReport",
    "SCHEMA",
    "UnknownDevice",
    "clear_runtime_cache",
    "cpu_peak_flops",
    "device_names",
    "discover",
    "discover_cpu",
    "discover_gpus",
    "format_si",
    "gpu_for_cuda_index",
    "load_catalog",
    "measure_ceilings",
    "openvino_devices",
    "ort_providers",
    "peak_flops",
    "spec_for_gpu",
    "torch_cuda_available",
    "torch_report",
    "CpuPowerSpec",
    "cpu_power_spec",
]
