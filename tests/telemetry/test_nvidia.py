"""NVIDIA paths for real: NVML's energy counter through Zeus and through hwfit's own reader,
samples, and peak memory. Skipped (tests/conftest.py) where there is no NVIDIA GPU; the tests that
load the GPU with torch skip by themselves where torch has no CUDA."""

import time

import pytest

from hwfit.telemetry import EnergyMeter, UtilizationSampler, power_sources, sample_device
from hwfit.telemetry._zeus import zeus_installed

pytestmark = pytest.mark.gpu


def gpu_matmul(seconds: float) -> None:
    import torch

    matrix = torch.randn(4096, 4096, device="cuda")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(20):
            matrix @ matrix
        torch.cuda.synchronize()


def plausible(reading) -> None:
    assert reading.how == "measured", reading.reason
    assert reading.formula is None and reading.utilization is None
    # Any datacenter or desktop GPU draws between a few watts idle and ~1.2 kW.
    assert 5 < reading.average_power_w < 1500


def test_hwfit_nvml_counter_measures_a_busy_gpu(torch_cuda):
    gpu_matmul(0.2)  # warm up: CUDA context, cuBLAS handles
    meter = EnergyMeter("cuda:0", prefer_zeus=False)
    assert meter.source.startswith("NVML total energy counter")
    with meter.window() as busy:
        gpu_matmul(1.0)
    with meter.window() as idle:
        time.sleep(1.0)
    plausible(busy.reading)
    plausible(idle.reading)
    assert busy.reading.average_power_w > idle.reading.average_power_w


@pytest.mark.skipif(not zeus_installed(), reason="zeus not installed (pip install zeus)")
def test_zeus_and_hwfit_agree_on_the_same_work(torch_cuda):
    gpu_matmul(0.2)
    by_zeus = EnergyMeter("cuda:0")
    by_hwfit = EnergyMeter("cuda:0", prefer_zeus=False)
    assert by_zeus.source == "zeus: NVML total energy counter"
    with by_zeus.window() as zeus_window, by_hwfit.window() as hwfit_window:
        gpu_matmul(1.0)
    plausible(zeus_window.reading)
    assert zeus_window.reading.joules == pytest.approx(hwfit_window.reading.joules, rel=0.1)


def test_gpu_samples_and_peak_memory(torch_cuda):
    import torch

    sample = sample_device("cuda:0")
    assert sample.memory_used_bytes > 0 and sample.power_w > 0 and sample.energy_j_total > 0
    assert 0.0 <= sample.utilization <= 1.0
    with UtilizationSampler("cuda:0", interval_s=0.05) as sampler:
        block = torch.empty(2 * 1024**3, dtype=torch.uint8, device="cuda")
        gpu_matmul(0.5)
    stats = sampler.stats
    assert stats.samples >= 5
    assert stats.peak_memory_used_bytes >= sample.memory_used_bytes + 2 * 1024**3 * 0.9
    assert stats.mean_utilization > 0.2 and stats.mean_power_w > 5
    del block


def test_power_sources_list_the_gpu_counter():
    sources = {(source.device, source.kind): source for source in power_sources()}
    assert sources[("cuda:0", "nvml-power")].usable
    assert ("cuda:0", "nvml-energy-counter") in sources
