"""What this machine offers to measure energy with, per device: for `hwfit devices` and reports."""

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hwfit.hardware import cpu_power_spec, discover_cpu
from hwfit.telemetry import nvml
from hwfit.telemetry._zeus import zeus_installed
from hwfit.telemetry.rapl import DEFAULT_POWERCAP_ROOT, rapl_status


@dataclass(frozen=True)
class PowerSourceInfo:
    """One way to get energy for one device: kind, whether it works here, and why not (or what it is)."""

    device: str  # "cpu", "cuda:N", or "cuda" when no GPU could be listed
    kind: str  # "rapl" | "estimate" | "zeus" | "nvml-energy-counter" | "nvml-power" | "nvml"
    usable: bool
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def power_sources(powercap_root: Path = DEFAULT_POWERCAP_ROOT) -> list[PowerSourceInfo]:
    """Every energy source for the CPU and each visible GPU, usable or not, in order of preference."""
    return _cpu_sources(powercap_root) + _gpu_sources()


def _cpu_sources(powercap_root: Path) -> list[PowerSourceInfo]:
    status = rapl_status(powercap_root)
    rapl = PowerSourceInfo("cpu", "rapl", status.usable, status.reason)
    spec = cpu_power_spec(discover_cpu())
    if spec is None:
        return [rapl, PowerSourceInfo("cpu", "estimate", False, "the spec catalog has no cpu_power figures")]
    note = (
        f"estimated, not measured: catalog power for {spec.rule_name} "
        f"({spec.max_w_per_core.value:.3g} W/core full load, {spec.idle_w_per_core.value:.3g} W/core idle) "
        f"x this process's CPU utilization"
    )
    return [rapl, PowerSourceInfo("cpu", "estimate", True, note)]


def _gpu_sources() -> list[PowerSourceInfo]:
    try:
        count = nvml.visible_cuda_count()
    except nvml.NvmlUnavailable as error:
        return [PowerSourceInfo("cuda", "nvml", False, str(error))]
    if count == 0:
        return [PowerSourceInfo("cuda", "nvml", False, "NVML found the driver but no visible GPU")]
    zeus_reason = None if zeus_installed() else "zeus not installed (pip install zeus); hwfit reads NVML itself"
    infos: list[PowerSourceInfo] = []
    for index in range(count):
        device = f"cuda:{index}"
        try:
            handle = nvml.handle_for_cuda(index)
        except nvml.NvmlUnavailable as error:
            infos.append(PowerSourceInfo(device, "nvml", False, str(error)))
            continue
        has_counter = nvml.total_energy_j(handle) is not None
        has_power = nvml.power_w(handle) is not None
        infos.append(
            PowerSourceInfo(
                device,
                "zeus",
                zeus_reason is None and has_counter,
                zeus_reason or (None if has_counter else "no energy counter (pre-Volta)"),
            )
        )
        infos.append(
            PowerSourceInfo(
                device,
                "nvml-energy-counter",
                has_counter,
                None if has_counter else "NVML: total-energy counter not supported (pre-Volta)",
            )
        )
        infos.append(
            PowerSourceInfo(device, "nvml-power", has_power, None if has_power else "NVML: power reading not supported")
        )
    return infos
