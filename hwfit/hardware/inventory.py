"""The whole-machine view: CPU, GPUs, runtimes and peak rates in one `HardwareInventory`.

`HardwareInventory.to_dict()` is the stable JSON that `hwfit devices --json` prints; its schema is
documented on the class and versioned by the "schema" key.
"""

import platform
from dataclasses import dataclass
from typing import Any

from hwfit.core import Device, Figure, UnknownDevice
from hwfit.hardware.catalog import DeviceSpec, cpu_peak_flops, spec_for_gpu
from hwfit.hardware.cpu import CpuInfo, discover_cpu
from hwfit.hardware.nvidia import GpuInfo, discover_gpus, gpu_for_cuda_index
from hwfit.hardware.runtimes import RuntimeReport, openvino_devices, ort_providers, torch_report

SCHEMA = "hwfit.devices/1"


@dataclass(frozen=True)
class HardwareInventory:
    """Everything hwfit knows about this machine before measuring anything.

    `to_dict()` returns (schema "hwfit.devices/1"; keys are only ever added, never renamed):

        {
          "schema": "hwfit.devices/1",
          "host": {"os": str, "kernel": str, "machine": str, "python": str},
          "cpu": {model_name, vendor, family, model, architecture, sockets, physical_cores,
                  logical_threads, usable_threads, cgroup_cpu_limit, base_clock_mhz,
                  max_clock_mhz, clock_source, isa: {feature: bool}, flags: [str],
                  caches: {"L1d"|"L1i"|"L2"|"L3": {size_bytes, instances}},
                  memory_total_bytes, memory_available_bytes, numa_nodes},
          "gpus": [{index, name, uuid, pci_bus_id, memory_total_bytes, sm_count, sm_count_source,
                    compute_capability, sm_clock_mhz, sm_clock_max_mhz, memory_clock_mhz,
                    memory_clock_max_mhz, power_limit_w, power_limit_default_w, pcie_gen,
                    pcie_width, pcie_max_gen, pcie_max_width, mig_enabled, driver_version,
                    cuda_driver_version, notes: [str],
                    "spec": DeviceSpec.to_dict() | null}],
          "gpu_reason": str | null,            # why "gpus" is empty (or partly unreadable)
          "runtimes": {"onnxruntime" | "openvino" | "torch":
                         {runtime, installed, version, reason,
                          devices: [{name, usable, reason, full_name, precisions: [str]}]}},
          "peaks": {"cpu" | "cuda:N": {dtype: {value, unit, how, source}}}
        }

    Every number in "peaks" carries how it was obtained: "computed" (CPU: cores x clock x
    FLOP/cycle, the formula in "source") or "spec"/"estimated" (GPU: the catalog's datasheet).
    `hwfit devices --bench --json` adds "ceilings": [{device, metric, dtype, value, unit, how,
    method, spec: {value, unit, how, source} | null, ratio, details}] and "bench_notes": [str]
    (devices that could not be benchmarked, and why).
    """

    cpu: CpuInfo
    gpus: tuple[GpuInfo, ...]
    gpu_reason: str | None
    gpu_specs: tuple[DeviceSpec | None, ...]  # catalog entry per GPU, same order
    runtimes: tuple[RuntimeReport, ...]
    peaks: dict[str, dict[str, Figure]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "host": _host(),
            "cpu": self.cpu.to_dict(),
            "gpus": [
                {**gpu.to_dict(), "spec": spec.to_dict() if spec else None}
                for gpu, spec in zip(self.gpus, self.gpu_specs)
            ],
            "gpu_reason": self.gpu_reason,
            "runtimes": {report.runtime: report.to_dict() for report in self.runtimes},
            "peaks": {
                device: {dtype: figure.to_dict() for dtype, figure in figures.items()}
                for device, figures in self.peaks.items()
            },
        }


def discover() -> HardwareInventory:
    """Discover the CPU, NVIDIA GPUs and runtimes, and attach peak rates. Never raises for absent hardware."""
    cpu = discover_cpu()
    gpus, gpu_reason = discover_gpus()
    specs = tuple(spec_for_gpu(gpu.name) for gpu in gpus)
    peaks: dict[str, dict[str, Figure]] = {"cpu": cpu_peak_flops(cpu)}
    for name in _cuda_names(gpus):
        gpu = gpu_for_cuda_index(Device.parse(name).index, gpus)
        peaks[name] = _gpu_peaks(spec_for_gpu(gpu.name) if gpu else None)
    return HardwareInventory(
        cpu=cpu,
        gpus=tuple(gpus),
        gpu_reason=gpu_reason,
        gpu_specs=specs,
        runtimes=(ort_providers(), openvino_devices(), torch_report()),
        peaks=peaks,
    )


def device_names() -> list[str]:
    """Devices hwfit can target: ["cpu", "cuda:0", ...] (CUDA numbering, after CUDA_VISIBLE_DEVICES)."""
    gpus, _ = discover_gpus()
    return ["cpu", *_cuda_names(gpus)]


def _cuda_names(gpus: list[GpuInfo]) -> list[str]:
    """CUDA numbers devices 0..k-1 over the GPUs CUDA_VISIBLE_DEVICES leaves visible."""
    names = []
    for index in range(len(gpus)):
        if gpu_for_cuda_index(index, gpus) is None:
            break
        names.append(f"cuda:{index}")
    return names


def peak_flops(device: str, dtype: str) -> Figure | None:
    """Peak rate of `device` ("cpu" or "cuda:N") for `dtype`, for MFU; None when unknown or unsupported."""
    parsed = Device.parse(device)
    if parsed.is_cpu:
        return cpu_peak_flops(discover_cpu()).get(dtype)
    if not parsed.is_gpu:
        raise UnknownDevice(f"no peak rate for {device!r}: expected 'cpu' or 'cuda:N'")
    gpus, reason = discover_gpus()
    gpu = gpu_for_cuda_index(parsed.index, gpus)
    if gpu is None:
        raise UnknownDevice(f"no GPU behind {device}: {reason or f'{len(gpus)} NVIDIA GPU(s) visible'}")
    spec = spec_for_gpu(gpu.name)
    return spec.peak_flops.get(dtype) if spec else None


def _gpu_peaks(spec: DeviceSpec | None) -> dict[str, Figure]:
    if spec is None:
        return {}
    return {dtype: figure for dtype, figure in spec.peak_flops.items() if figure is not None}


def _host() -> dict[str, str]:
    return {
        "os": platform.system(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
