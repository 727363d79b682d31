"""CPU energy *estimate* where no counter can be read: the spec catalog's per-core power at idle
and full load, interpolated by this process's measured CPU utilization. Never a measurement.

    E = t x n x (P_idle + (P_max - P_idle) x u),  u = CPU seconds of this process / (t x CPUs usable)

n is the physical cores the usable CPUs amount to; P_max and P_idle are per core, from the
catalog's `cpu_power` rules (each with its source).
"""

import os
from dataclasses import dataclass

from hwfit.hardware import CpuInfo, CpuPowerSpec, cpu_power_spec, discover_cpu


@dataclass(frozen=True)
class CpuCapacity:
    """What this process may use: CPU-seconds per second (threads, cgroup quota) and the cores they are."""

    cpu_seconds_per_s: float
    power_cores: float
    note: str


def cpu_capacity(cpu: CpuInfo) -> CpuCapacity:
    """Logical CPUs in the affinity mask (capped by a cgroup quota) and the physical cores they amount to."""
    threads = float(cpu.usable_threads or cpu.logical_threads or os.cpu_count() or 1)
    note = f"{threads:g} CPUs in the affinity mask"
    cores = threads
    if cpu.physical_cores and cpu.logical_threads:
        cores = cpu.physical_cores * threads / cpu.logical_threads
        if cores != threads:
            note += f" = {cores:g} cores ({cpu.physical_cores} cores / {cpu.logical_threads} threads)"
    if cpu.cgroup_cpu_limit is not None and cpu.cgroup_cpu_limit < threads:
        threads = cpu.cgroup_cpu_limit
        cores = min(cores, cpu.cgroup_cpu_limit)
        note = f"cgroup quota of {threads:g} CPUs"
    return CpuCapacity(cpu_seconds_per_s=threads, power_cores=cores, note=note)


def process_cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) and of its waited-for children."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


@dataclass(frozen=True)
class CpuEstimate:
    """An estimated window: joules, the mean power it implies, the utilization used, and the formula."""

    joules: float
    average_power_w: float
    utilization: float
    formula: str


class CpuPowerModel:
    """The catalog's power figures for this CPU and the cores this process may use."""

    def __init__(self, cpu: CpuInfo | None = None, spec: CpuPowerSpec | None = None) -> None:
        self.cpu = cpu or discover_cpu()
        self.spec = spec or cpu_power_spec(self.cpu)
        self.capacity = cpu_capacity(self.cpu)

    @property
    def source(self) -> str:
        rule = self.spec.rule_name if self.spec else "no cpu_power rule"
        return f"estimate: catalog CPU power ({rule}) x process CPU utilization"

    def estimate(self, seconds: float, cpu_seconds: float) -> CpuEstimate | None:
        """The energy of a window of `seconds` in which this process used `cpu_seconds` of CPU."""
        if self.spec is None or seconds <= 0:
            return None
        capacity = self.capacity
        raw_utilization = cpu_seconds / (seconds * capacity.cpu_seconds_per_s)
        utilization = min(1.0, max(0.0, raw_utilization))
        max_w = self.spec.max_w_per_core.value
        idle_w = self.spec.idle_w_per_core.value
        power_w = capacity.power_cores * (idle_w + (max_w - idle_w) * utilization)
        joules = seconds * power_w
        formula = (
            f"E = t x n x (P_idle + (P_max - P_idle) x u) = {seconds:.4g} s x {capacity.power_cores:g} cores x "
            f"({idle_w:.4g} W + ({max_w:.4g} W - {idle_w:.4g} W) x {utilization:.3f}) = {joules:.4g} J; "
            f"u = CPU time / (t x CPUs) = {cpu_seconds:.4g} s / ({seconds:.4g} s x {capacity.cpu_seconds_per_s:g})"
            f"{' clamped to [0, 1]' if utilization != raw_utilization else ''}; n: {capacity.note}; "
            f"P_max = {max_w:.4g} W/core ({self.spec.max_w_per_core.how}: {self.spec.max_w_per_core.source}); "
            f"P_idle = {idle_w:.4g} W/core ({self.spec.idle_w_per_core.how}: {self.spec.idle_w_per_core.source})"
        )
        return CpuEstimate(joules=joules, average_power_w=power_w, utilization=utilization, formula=formula)
