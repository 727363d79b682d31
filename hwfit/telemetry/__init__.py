"""The telemetry layer: energy meters (hardware counters through Zeus, NVML or RAPL; a labelled
estimate on CPUs without one), device samples and a utilization sampler, NVML GPM (what the SMs
did), per-process CPU and GPU shares, and reading a server's Prometheus metrics.

Imports only `hwfit.core` and `hwfit.hardware` from hwfit. Everything public is listed in `__all__`.
"""

from hwfit.telemetry._errors import TelemetryError
from hwfit.telemetry.energy import EnergyMeter, EnergyReading
from hwfit.telemetry.gpm import GpmReader, GpmWindow, GpuProcess, gpm_support, gpu_processes
from hwfit.telemetry.processes import ProcessUsage, ProcessWatch, run_queue_wait_s
from hwfit.telemetry.prometheus import (
    Scrape,
    delta_by,
    delta_of,
    histogram_delta,
    histogram_quantile,
    metrics_url,
    parse_metrics,
    scrape,
)
from hwfit.telemetry.sampling import DeviceSample, UtilizationSampler, UtilizationStats, busy_share, sample_device
from hwfit.telemetry.sources import PowerSourceInfo, power_sources

__all__ = [
    "GpmReader",
    "GpmWindow",
    "GpuProcess",
    "ProcessUsage",
    "ProcessWatch",
    "Scrape",
    "busy_share",
    "delta_by",
    "delta_of",
    "gpm_support",
    "gpu_processes",
    "histogram_delta",
    "histogram_quantile",
    "metrics_url",
    "parse_metrics",
    "run_queue_wait_s",
    "scrape",
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
