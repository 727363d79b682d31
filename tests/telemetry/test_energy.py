"""The CPU energy meter on this machine (no powercap: an estimate), and the reading's rules."""

import time
from pathlib import Path

import pytest

from hwfit.hardware import cpu_power_spec, discover_cpu
from hwfit.telemetry import EnergyMeter, EnergyReading, TelemetryError, nvml
from hwfit.telemetry.energy import integrate_power
from hwfit.telemetry.rapl import DEFAULT_POWERCAP_ROOT, rapl_status

WINDOW_S = 0.5
NO_RAPL = not rapl_status().usable


def measure(meter: EnergyMeter, work) -> EnergyReading:
    with meter.window() as window:
        work()
    assert window.reading is not None
    return window.reading


@pytest.mark.skipif(not NO_RAPL, reason="RAPL is readable here: the CPU meter measures instead of estimating")
def test_cpu_estimate_grows_with_a_busier_window(busy_matmul):
    meter = EnergyMeter("cpu")
    idle = measure(meter, lambda: time.sleep(WINDOW_S))
    busy = measure(meter, lambda: busy_matmul(WINDOW_S))
    for reading in (idle, busy):
        assert reading.how == "estimated"
        assert reading.source.startswith("estimate: catalog CPU power")
        assert "powercap" in reading.reason and "estimated, not measured" in reading.reason
        assert 0.0 <= reading.utilization <= 1.0
        assert reading.average_power_w == pytest.approx(reading.joules / reading.seconds)
    # u is this process's own CPU time, so other processes on the machine do not enter it.
    assert idle.utilization < 0.1
    assert busy.utilization > idle.utilization + 0.25
    assert busy.joules > idle.joules


@pytest.mark.skipif(not NO_RAPL, reason="RAPL is readable here: the CPU meter measures instead of estimating")
def test_estimate_follows_its_formula_and_shows_the_numbers(busy_matmul):
    reading = measure(EnergyMeter("cpu"), lambda: busy_matmul(0.3, threads=1))
    spec = cpu_power_spec(discover_cpu())
    max_w, idle_w = spec.max_w_per_core.value, spec.idle_w_per_core.value
    cores = float(reading.formula.split(" cores x ")[0].rsplit(" ", 1)[1])
    expected = reading.seconds * cores * (idle_w + (max_w - idle_w) * reading.utilization)
    assert reading.joules == pytest.approx(expected, rel=1e-3)
    assert f"{max_w:.4g} W" in reading.formula and f"{idle_w:.4g} W" in reading.formula
    assert f"{reading.seconds:.4g} s" in reading.formula and f"{reading.joules:.4g} J" in reading.formula
    assert f"{reading.utilization:.3f}" in reading.formula
    assert spec.max_w_per_core.source in reading.formula  # where P_max comes from


@pytest.mark.skipif(not NO_RAPL, reason="RAPL is readable here")
def test_no_estimate_gives_null_with_the_reason():
    meter = EnergyMeter("cpu", allow_estimate=False)
    reading = measure(meter, lambda: time.sleep(0.05))
    assert reading.joules is None and reading.how is None and reading.average_power_w is None
    assert "powercap" in reading.reason and "RAPL" in reading.reason
    assert reading.joules_per(10) is None


def test_missing_powercap_root_is_reported(tmp_path):
    reading = measure(EnergyMeter("cpu", allow_estimate=False, powercap_root=tmp_path / "none"), lambda: None)
    assert str(tmp_path / "none") in reading.reason
    assert Path("/sys/class/powercap") == DEFAULT_POWERCAP_ROOT


def test_joules_per_and_invariants():
    reading = EnergyReading("cpu", 2.0, 10.0, "estimated", "s", "f", "r", 5.0, 0.5)
    assert reading.joules_per(4) == 2.5
    with pytest.raises(TelemetryError, match="positive count"):
        reading.joules_per(0)
    with pytest.raises(ValueError, match="how must be one of"):
        EnergyReading("cpu", 1.0, 1.0, "spec", "s", None, None, 1.0, None)
    with pytest.raises(ValueError, match="both"):
        EnergyReading("cpu", 1.0, 1.0, None, "s", None, None, 1.0, None)
    assert reading.to_dict()["how"] == "estimated"


def test_misuse_and_bad_device_names():
    meter = EnergyMeter("cpu")
    with pytest.raises(TelemetryError, match="before begin"):
        meter.end()
    meter.begin()
    with pytest.raises(TelemetryError, match="twice"):
        meter.begin()
    meter.end()
    with pytest.raises(TelemetryError, match="'tpu:0'.*'cpu' or 'cuda:N'"):
        EnergyMeter("tpu:0")


def test_window_keeps_its_reading_when_the_work_fails():
    meter = EnergyMeter("cpu")
    with pytest.raises(RuntimeError), meter.window() as window:
        raise RuntimeError("work failed")
    assert window.reading is not None and window.reading.seconds >= 0
    meter.begin()  # the meter is usable again
    meter.end()


def test_trapezoid_integration_of_power():
    assert integrate_power([(0.0, 100.0), (1.0, 200.0), (3.0, 200.0)]) == pytest.approx(150.0 + 400.0)


def _nvml_works() -> bool:
    try:
        nvml.nvml()
    except nvml.NvmlUnavailable:
        return False
    return True


@pytest.mark.skipif(_nvml_works(), reason="NVML works here: see test_nvidia.py")
def test_gpu_without_nvml_is_null_and_never_estimated():
    meter = EnergyMeter("cuda:0", prefer_zeus=False)
    reading = measure(meter, lambda: time.sleep(0.01))
    assert reading.device == "cuda:0"
    assert reading.joules is None and reading.how is None
    assert "NVML" in reading.reason and "never estimated" in reading.reason
