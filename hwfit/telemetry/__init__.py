"""The telemetry layer: energy meters (hardware counters through Zeus, NVML or RAPL; a labelled
estimate on CPUs without one), device samples and a utilization sampler.

Imports only `hwfit.core` and `hwfit.hardware` from hwfit. Everything public is listed in `__all__`.
"""

from hwfit.telemetry._errors import TelemetryError
from hwfit.telemetry.energy import EnergyMeter, EnergyReading
from hwfit.telemetry.sampling import DeviceSample, UtilizationSampler, UtilizationStats, sample_device
from hwfit.telemetry.sources import PowerSourceInfo, power_sources

__all__ = [
    "DeviceSample",
    "EnergyMeter",
    "EnergyReading",
    "PowerSourceInfo",
    "TelemetryError",
    "UtilizationSampler",
    "UtilizationStats",
    "power_sources",
    "sample_device",
]
