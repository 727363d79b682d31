"""CPU discovery on this machine, checked against what the kernel itself reports."""

import os
import platform
from pathlib import Path

import pytest

from hwfit.hardware import ISA_FEATURES, CpuInfo, discover_cpu

linux_only = pytest.mark.skipif(platform.system() != "Linux", reason="reads /proc and /sys, Linux only")


def _proc_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.partition(":")[2].split())
    return set()


def test_counts_are_consistent():
    cpu = discover_cpu()
    assert cpu.physical_cores is not None and cpu.physical_cores >= 1
    assert cpu.logical_threads is not None and cpu.logical_threads >= cpu.physical_cores
    assert 1 <= cpu.usable_threads <= cpu.logical_threads
    if hasattr(os, "sched_getaffinity"):
        assert cpu.usable_threads == len(os.sched_getaffinity(0))


@linux_only
def test_flags_agree_with_proc_cpuinfo():
    cpu = discover_cpu()
    proc = _proc_flags()
    assert set(cpu.flags) == proc
    for feature in ISA_FEATURES:
        assert cpu.has(feature) == (feature in proc), feature
        assert cpu.isa[feature] == (feature in proc)
    assert cpu.has("AVX2") == ("avx2" in proc)  # case does not matter
    assert not cpu.has("no_such_flag")


@linux_only
def test_caches_match_sysfs():
    cpu = discover_cpu()
    l1d = cpu.cache("L1d")
    sysfs = Path("/sys/devices/system/cpu/cpu0/cache/index0")
    if not sysfs.exists():
        pytest.skip("no cache information in sysfs here")
    assert l1d is not None and l1d.size_bytes >= 16 * 1024
    last = max(cpu.caches, key=lambda level: level.level)
    assert cpu.last_level_cache_bytes == last.size_bytes * last.instances
    # Sizes grow with the level: a parser that mixed up K and M would break this.
    sizes = [level.size_bytes for level in sorted(cpu.caches, key=lambda level: level.level) if level.name != "L1i"]
    assert sizes == sorted(sizes)


def test_memory_and_numa():
    cpu = discover_cpu()
    assert cpu.memory_total_bytes and cpu.memory_total_bytes > 256 * 1024**2
    assert 0 < cpu.memory_available_bytes <= cpu.memory_total_bytes
    if platform.system() == "Linux":
        assert cpu.numa_nodes is None or cpu.numa_nodes >= 1


def test_clock_has_a_source():
    cpu = discover_cpu()
    assert cpu.clock_source
    if cpu.base_clock_mhz is not None:
        assert 200 < cpu.base_clock_mhz < 10_000
    if cpu.max_clock_mhz is not None:
        assert cpu.max_clock_mhz >= (cpu.base_clock_mhz or 0) * 0.5


def test_to_dict_round_trips_the_isa_and_flags():
    cpu = discover_cpu()
    data = cpu.to_dict()
    assert data["isa"] == cpu.isa
    assert data["flags"] == list(cpu.flags)
    assert set(data["caches"]) == {level.name for level in cpu.caches}


def test_discovery_is_stable_and_a_hashable_value():
    first, second = discover_cpu(), discover_cpu()
    assert isinstance(first, CpuInfo)
    assert first.flags == second.flags and first.caches == second.caches
    assert first.physical_cores == second.physical_cores
    hash(first)  # a frozen value: usable as a dict key, e.g. to cache peaks per CPU


def test_without_proc_and_sys_discovery_degrades_to_none(tmp_path, monkeypatch):
    # What a non-Linux host looks like to the parser: none of the files exist.
    from hwfit.hardware import cpu as cpu_module

    monkeypatch.setattr(cpu_module, "_PROC_CPUINFO", tmp_path / "cpuinfo")
    monkeypatch.setattr(cpu_module, "_SYS_CPU", tmp_path / "cpu")
    monkeypatch.setattr(cpu_module, "_SYS_NODE", tmp_path / "node")
    info = cpu_module.discover_cpu()
    assert info.caches == () and info.last_level_cache_bytes is None
    assert info.numa_nodes is None
    assert info.base_clock_mhz is None and info.max_clock_mhz is None and info.clock_source.startswith("unknown")
    assert info.logical_threads and info.logical_threads >= 1  # os.cpu_count still answers
    assert isinstance(info.flags, tuple)  # from py-cpuinfo, or empty
    info.to_dict()


def test_garbled_cpuinfo_does_not_crash(tmp_path, monkeypatch):
    from hwfit.hardware import cpu as cpu_module

    garbled = tmp_path / "cpuinfo"
    garbled.write_text(
        "processor\t: 0\ncpu family\t: x\ncpu MHz\t\t: fast\nflags\t\t: avx2 fma\n\nnonsense without colon\n"
    )
    monkeypatch.setattr(cpu_module, "_PROC_CPUINFO", garbled)
    info = cpu_module.discover_cpu()
    assert info.family is None
    assert info.has("avx2") and info.has("fma")


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"memory.max": "2147483648\n"}, 2147483648),
        ({"memory.max": "max\n"}, None),
        ({"memory/memory.limit_in_bytes": "1073741824\n"}, 1073741824),
        ({"memory/memory.limit_in_bytes": "9223372036854771712\n"}, None),  # cgroup v1's "unlimited"
        ({}, None),
    ],
)
def test_container_memory_limit_from_cgroup_v2_or_v1(tmp_path, files, expected):
    from hwfit.hardware.cpu import _cgroup_memory_limit

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert _cgroup_memory_limit(tmp_path) == expected
