"""Device samples and the utilization sampler on the CPU; power sources on this machine."""

import time

import psutil
import pytest

from hwfit.telemetry import DeviceSample, UtilizationSampler, power_sources, sample_device
from hwfit.telemetry.rapl import rapl_status


def test_cpu_sample_has_utilization_and_memory():
    before = time.time()
    sample = sample_device("cpu")
    after = time.time()
    assert isinstance(sample, DeviceSample) and sample.device == "cpu"
    assert 0.0 <= sample.utilization <= 1.0
    assert sample.memory_used_bytes > 0
    assert before <= sample.timestamp_s <= after  # stamped while it was taken, on the wall clock
    if not rapl_status().usable:
        assert sample.power_w is None and sample.energy_j_total is None


def test_sampler_on_cpu_sees_the_busy_window(busy_matmul):
    with UtilizationSampler("cpu", interval_s=0.05) as idle_sampler:
        time.sleep(0.3)
    with UtilizationSampler("cpu", interval_s=0.05) as busy_sampler:
        busy_matmul(0.4)
    idle, busy = idle_sampler.stats, busy_sampler.stats
    for stats in (idle, busy):
        assert stats.samples > 1
        assert stats.peak_memory_used_bytes > 0
        assert 0.0 <= stats.mean_utilization <= 1.0
    # System-wide share: other processes may fill the idle window, but two busy threads on a
    # machine of any size must show; an inverted (idle) share would read near 0 here on 2 cores.
    assert busy.mean_utilization > min(0.5, 2 / psutil.cpu_count())
    assert busy.samples == len(busy_sampler.samples)


def test_sampler_stop_without_start_and_short_window():
    sampler = UtilizationSampler("cpu", interval_s=10)
    with pytest.raises(Exception, match="before start"):
        sampler.stop()
    sampler.start()
    stats = sampler.stop()  # shorter than one interval: the stop sample still counts
    assert stats.samples == 1


def test_power_sources_list_the_cpu_with_reasons():
    sources = power_sources()
    cpu = {source.kind: source for source in sources if source.device == "cpu"}
    assert set(cpu) == {"rapl", "estimate"}
    if not rapl_status().usable:
        assert not cpu["rapl"].usable and "powercap" in cpu["rapl"].reason
    assert cpu["estimate"].usable and "estimated, not measured" in cpu["estimate"].reason
    assert any(source.device.startswith("cuda") for source in sources)  # a GPU or why there is none
    assert all(source.usable or source.reason for source in sources)


def test_cpu_samples_within_one_clock_tick_keep_the_last_share(monkeypatch):
    """Two scrapes back to back read the same cpu_times: the share is carried, not dropped."""
    from hwfit.telemetry import sampling

    tracker = sampling._CpuTracker()
    times = psutil.cpu_times()
    later = type(times)(*(value + (10.0 if field != "idle" else 30.0) for field, value in zip(times._fields, times)))
    readings = iter([times, later, later, later])
    monkeypatch.setattr(sampling.psutil, "cpu_times", lambda: next(readings))
    monkeypatch.setattr(sampling.time, "sleep", lambda seconds: None)
    first = tracker.sample()  # primes with `times`, then reads `later`
    assert first.utilization is not None and 0.0 < first.utilization < 1.0
    second = tracker.sample()  # counters unchanged since `later`
    assert second.utilization == first.utilization


def _nvml_with_a_lost_gpu(monkeypatch):
    """NVML as the driver answers when one of two GPUs is lost: calls on handle 1 raise
    NVMLError_GpuIsLost (an injected fault: the pynvml calls are replaced, the error type is pynvml's)."""
    import pynvml

    from hwfit.telemetry import nvml

    class Handle:
        def __init__(self, index: int):
            self.index = index

    handles = [Handle(0), Handle(1)]

    def answer(value):
        def read(handle):
            if handle.index == 1:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
            return value

        return read

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(nvml, "nvml", lambda: pynvml)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", lambda: 2)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", lambda index: handles[index])
    monkeypatch.setattr(pynvml, "nvmlDeviceGetUtilizationRates", answer(type("Rates", (), {"gpu": 50})()))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetMemoryInfo", answer(type("Memory", (), {"used": 2**30})()))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetPowerUsage", answer(250_000))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetTotalEnergyConsumption", answer(9_000_000))
    return pynvml, handles


def test_an_nvml_error_on_one_gpu_stays_out_of_the_sampler_and_metrics(monkeypatch):
    from hwfit.serve.scheduler.metrics import ServeMetrics

    _nvml_with_a_lost_gpu(monkeypatch)
    good, lost = sample_device("cuda:0"), sample_device("cuda:1")
    assert (good.utilization, good.memory_used_bytes, good.power_w, good.energy_j_total) == (0.5, 2**30, 250.0, 9000.0)
    assert (lost.utilization, lost.memory_used_bytes, lost.power_w, lost.energy_j_total) == (None, None, None, None)
    with UtilizationSampler("cuda:1", interval_s=0.01) as sampler:
        time.sleep(0.05)
    assert sampler.stats.samples >= 2 and sampler.stats.mean_power_w is None
    text = ServeMetrics("m", "1", ("cpu", "cuda:0", "cuda:1")).text()
    assert 'hwfit_device_power_watts{device="cuda:0"} 250.0' in text
    assert 'hwfit_device_power_watts{device="cuda:1"}' not in text


def test_an_nvml_error_when_getting_the_handle_is_not_raised(monkeypatch):
    from hwfit.telemetry import nvml

    pynvml, handles = _nvml_with_a_lost_gpu(monkeypatch)

    def handle_by_index(index):
        if index == 1:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        return handles[index]

    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", handle_by_index)
    with pytest.raises(nvml.NvmlUnavailable, match="NVML refused cuda:1"):
        nvml.handle_for_cuda(1)
    assert sample_device("cuda:1").power_w is None
    assert sample_device("cuda:0").power_w == 250.0
