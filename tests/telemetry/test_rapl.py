"""RAPL through a fake powercap tree: zone discovery, wrap-around, and the root-only refusal."""

import os
from pathlib import Path

import pytest

from hwfit.telemetry import EnergyMeter
from hwfit.telemetry.rapl import RaplCounter, rapl_status, read_sysfs

MAX_RANGE_UJ = 262_143_328_850  # what Intel and AMD (intel_rapl driver) report for a package zone


def make_zone(root: Path, name: str, label: str, energy_uj: int, max_range_uj: int = MAX_RANGE_UJ) -> Path:
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "name").write_text(f"{label}\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
    return zone


def set_energy(zone: Path, energy_uj: int) -> None:
    (zone / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def powercap(tmp_path):
    root = tmp_path / "powercap"
    package0 = make_zone(root, "intel-rapl:0", "package-0", 5_000_000)
    package1 = make_zone(root, "intel-rapl:1", "package-1", 7_000_000)
    make_zone(root, "intel-rapl:0:0", "core", 1_000_000)  # a sub-zone: part of package-0, not added again
    return root, package0, package1


def test_status_finds_package_zones_only(powercap):
    root, _, _ = powercap
    status = rapl_status(root)
    assert status.usable and status.reason is None
    assert [zone.name for zone in status.zones] == ["package-0", "package-1"]


def test_meter_measures_the_sum_of_packages(powercap):
    root, package0, package1 = powercap
    meter = EnergyMeter("cpu", powercap_root=root)
    meter.begin()
    set_energy(package0, 5_000_000 + 3_000_000)  # +3 J
    set_energy(package1, 7_000_000 + 1_500_000)  # +1.5 J
    reading = meter.end()
    assert reading.how == "measured"
    assert reading.joules == pytest.approx(4.5)
    assert reading.formula is None and reading.utilization is None
    assert "RAPL" in reading.source and "intel-rapl:0" in reading.source
    assert reading.average_power_w == pytest.approx(4.5 / reading.seconds)


def test_meter_handles_a_counter_wrap(powercap):
    root, package0, package1 = powercap
    set_energy(package0, MAX_RANGE_UJ - 1_000_000)  # 1 J before the wrap
    meter = EnergyMeter("cpu", powercap_root=root)
    meter.begin()
    set_energy(package0, 2_000_000)  # wrapped, then 2 J more
    reading = meter.end()
    assert reading.how == "measured"
    assert reading.joules == pytest.approx(3.0)


def test_counter_counts_every_wrap_it_polls_across(tmp_path):
    make_zone(tmp_path, "intel-rapl:0", "package-0", 900, max_range_uj=1000)
    values = iter(["900", "100", "950", "50", "60"])  # wraps twice between polls

    def reader(path: Path) -> str:
        return next(values) if path.name == "energy_uj" else read_sysfs(path)

    status = rapl_status(tmp_path)
    counter = RaplCounter(status.zones, reader)  # reads 900
    assert counter.poll() == pytest.approx(200e-6)  # 900 -> 100: 200 uJ
    assert counter.poll() == pytest.approx(1050e-6)  # 100 -> 950: +850
    assert counter.poll() == pytest.approx(1150e-6)  # 950 -> 50: +100 across the wrap
    assert counter.poll() == pytest.approx(1160e-6)
    assert counter.wraps == 2


def refuse_energy(path: Path) -> str:
    """What a kernel >= 5.10 does to a non-root reader of energy_uj."""
    if path.name == "energy_uj":
        raise PermissionError(13, "Permission denied", str(path))
    return read_sysfs(path)


def test_root_only_counter_says_so_and_falls_back_to_an_estimate(powercap):
    root, _, _ = powercap
    status = rapl_status(root, refuse_energy)
    assert not status.usable
    assert "root-only since Linux 5.10" in status.reason and "CVE-2020-8694" in status.reason
    meter = EnergyMeter("cpu", powercap_root=root, rapl_reader=refuse_energy)
    with meter.window() as window:
        pass
    reading = window.reading
    assert reading.how == "estimated"
    assert "root-only" in reading.reason


def test_root_only_counter_without_estimate_is_null(powercap):
    root, _, _ = powercap
    meter = EnergyMeter("cpu", allow_estimate=False, powercap_root=root, rapl_reader=refuse_energy)
    meter.begin()
    reading = meter.end()
    assert reading.joules is None and reading.how is None
    assert "CVE-2020-8694" in reading.reason and "allow_estimate=False" in reading.reason


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads a chmod 000 file anyway")
def test_unreadable_file_on_disk(powercap):
    root, package0, _ = powercap
    (package0 / "energy_uj").chmod(0)
    status = rapl_status(root)
    assert not status.usable and "root-only" in status.reason


def test_missing_powercap_and_missing_zones(tmp_path):
    missing = rapl_status(tmp_path / "absent")
    assert not missing.usable and "RAPL not exposed" in missing.reason
    (tmp_path / "empty").mkdir()
    empty = rapl_status(tmp_path / "empty")
    assert not empty.usable and "no intel-rapl package zones" in empty.reason
