"""CPU discovery: model, topology, clocks, ISA features, caches, memory and NUMA of this machine.

Linux is read directly from /proc and /sys; elsewhere py-cpuinfo and psutil fill what they can
and the rest stays None. Discovery never raises: a file that cannot be read leaves its field None.
"""

import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Linux /proc/cpuinfo flag names of the instructions that decide inference speed on a CPU.
ISA_FEATURES = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "avx_vnni",
)

_SYS_CPU = Path("/sys/devices/system/cpu")
_SYS_NODE = Path("/sys/devices/system/node")
_PROC_CPUINFO = Path("/proc/cpuinfo")
_VENDORS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD", "HygonGenuine": "Hygon"}
# ARM "CPU implementer" codes of the vendors one meets in servers and laptops.
_ARM_IMPLEMENTERS = {"0x41": "ARM", "0x61": "Apple", "0xc0": "Ampere", "0x48": "HiSilicon", "0x46": "Fujitsu"}


@dataclass(frozen=True)
class CacheLevel:
    """One cache level as cpu0 sees it: size of one instance, and how many instances the machine has."""

    name: str  # "L1d", "L1i", "L2", "L3"
    level: int
    size_bytes: int
    instances: int  # distinct copies (e.g. one L3 per CCX); total = size_bytes * instances

    @property
    def total_bytes(self) -> int:
        return self.size_bytes * self.instances


@dataclass(frozen=True)
class CpuInfo:
    """What this machine's CPU is and can do; None where the platform does not say."""

    model_name: str | None
    vendor: str | None  # "Intel", "AMD", "ARM", ... (vendor_id mapped to a name)
    family: int | None  # x86 "cpu family" (decides per-cycle throughput on AMD)
    model: int | None  # x86 "model"
    architecture: str  # platform.machine(): "x86_64", "aarch64", ...
    sockets: int | None
    physical_cores: int | None
    logical_threads: int | None
    usable_threads: int | None  # threads this process may run on (affinity mask)
    cgroup_cpu_limit: float | None  # CPUs a cgroup quota allows (cpu.max), None when unlimited
    cgroup_memory_limit_bytes: int | None  # a cgroup's memory limit (memory.max), None when unlimited
    governor: str | None  # cpufreq scaling governor of cpu0 ("performance", "powersave", ...)
    base_clock_mhz: float | None
    max_clock_mhz: float | None
    clock_source: str  # where the clocks came from, in words
    flags: tuple[str, ...]  # the raw flag list, lower case
    caches: tuple[CacheLevel, ...]
    memory_total_bytes: int | None
    memory_available_bytes: int | None
    numa_nodes: int | None
    _flag_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_flag_set", frozenset(flag.lower() for flag in self.flags))

    def has(self, feature: str) -> bool:
        """True when the CPU reports `feature` (a /proc/cpuinfo flag name such as 'avx512_bf16')."""
        return feature.lower() in self._flag_set

    @property
    def isa(self) -> dict[str, bool]:
        """The inference-relevant ISA features as booleans, in a fixed order."""
        return {feature: self.has(feature) for feature in ISA_FEATURES}

    def cache(self, name: str) -> CacheLevel | None:
        """The cache called `name` ('L1d', 'L1i', 'L2', 'L3'), or None when unknown."""
        for level in self.caches:
            if level.name == name:
                return level
        return None

    @property
    def last_level_cache_bytes(self) -> int | None:
        """Total size of the last cache level over all its instances (what a bandwidth test must exceed)."""
        if not self.caches:
            return None
        last = max(self.caches, key=lambda level: level.level)
        return last.total_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "vendor": self.vendor,
            "family": self.family,
            "model": self.model,
            "architecture": self.architecture,
            "sockets": self.sockets,
            "physical_cores": self.physical_cores,
            "logical_threads": self.logical_threads,
            "usable_threads": self.usable_threads,
            "cgroup_cpu_limit": self.cgroup_cpu_limit,
            "cgroup_memory_limit_bytes": self.cgroup_memory_limit_bytes,
            "governor": self.governor,
            "base_clock_mhz": self.base_clock_mhz,
            "max_clock_mhz": self.max_clock_mhz,
            "clock_source": self.clock_source,
            "isa": self.isa,
            "flags": list(self.flags),
            "caches": {
                level.name: {"size_bytes": level.size_bytes, "instances": level.instances} for level in self.caches
            },
            "memory_total_bytes": self.memory_total_bytes,
            "memory_available_bytes": self.memory_available_bytes,
            "numa_nodes": self.numa_nodes,
        }


def discover_cpu() -> CpuInfo:
    """Describe this machine's CPU. Never raises; unknown fields are None."""
    blocks = _parse_cpuinfo(_read_text(_PROC_CPUINFO) or "")
    first = blocks[0] if blocks else {}
    flags = _flags(first)
    sockets, cores = _topology(blocks)
    base_mhz, max_mhz, clock_source = _clocks(blocks)
    total_bytes, available_bytes = _memory()
    return CpuInfo(
        model_name=_model_name(first),
        vendor=_vendor(first),
        family=_int_or_none(first.get("cpu family")),
        model=_int_or_none(first.get("model")),
        architecture=platform.machine() or "unknown",
        sockets=sockets,
        physical_cores=cores,
        logical_threads=_logical_threads(blocks),
        usable_threads=_usable_threads(),
        cgroup_cpu_limit=_cgroup_cpu_limit(),
        cgroup_memory_limit_bytes=_cgroup_memory_limit(),
        governor=(_read_text(_SYS_CPU / "cpu0" / "cpufreq" / "scaling_governor") or "").strip() or None,
        base_clock_mhz=base_mhz,
        max_clock_mhz=max_mhz,
        clock_source=clock_source,
        flags=flags,
        caches=_caches(),
        memory_total_bytes=total_bytes,
        memory_available_bytes=available_bytes,
        numa_nodes=_numa_nodes(),
    )


# --- /proc/cpuinfo ---------------------------------------------------------------------------


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _parse_cpuinfo(text: str) -> list[dict[str, str]]:
    """Split /proc/cpuinfo into one dict per processor (blank lines separate them)."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current = {}
            continue
        key, _, value = line.partition(":")
        current[key.strip()] = value.strip()
    if current:
        blocks.append(current)
    # ARM kernels print per-processor blocks and then a trailing block with "Hardware"/"Model".
    return [block for block in blocks if "processor" in block] or blocks


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text, 0)
    except ValueError:
        return None


def _float_or_none(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _model_name(first: dict[str, str]) -> str | None:
    name = first.get("model name") or first.get("Model") or first.get("cpu model")
    if name:
        return name
    fallback = _py_cpuinfo().get("brand_raw") or platform.processor()
    return fallback or None


def _vendor(first: dict[str, str]) -> str | None:
    vendor_id = first.get("vendor_id")
    if vendor_id:
        return _VENDORS.get(vendor_id, vendor_id)
    implementer = first.get("CPU implementer")
    if implementer:
        return _ARM_IMPLEMENTERS.get(implementer.lower(), f"ARM implementer {implementer}")
    vendor_raw = _py_cpuinfo().get("vendor_id_raw")
    return _VENDORS.get(vendor_raw, vendor_raw) if vendor_raw else None


def _flags(first: dict[str, str]) -> tuple[str, ...]:
    # x86 kernels call the list "flags", ARM kernels "Features".
    raw = first.get("flags") or first.get("Features")
    if raw is not None:
        return tuple(flag.lower() for flag in raw.split())
    return tuple(flag.lower() for flag in _py_cpuinfo().get("flags", []))


_PY_CPUINFO_CACHE: dict[str, Any] = {}


def _py_cpuinfo() -> dict[str, Any]:
    """py-cpuinfo's answer, asked once per process and only where /proc is silent (it is slow)."""
    if _PROC_CPUINFO.exists():
        return {}
    if "info" not in _PY_CPUINFO_CACHE:
        try:
            import cpuinfo

            _PY_CPUINFO_CACHE["info"] = cpuinfo.get_cpu_info()
        except Exception:  # py-cpuinfo shells out on some platforms; any failure means "unknown"
            _PY_CPUINFO_CACHE["info"] = {}
    return _PY_CPUINFO_CACHE["info"]


# --- topology ----------------------------------------------------------------------------------


def _topology(blocks: list[dict[str, str]]) -> tuple[int | None, int | None]:
    """(sockets, physical cores): sysfs topology first, then /proc/cpuinfo ids, then psutil."""
    packages: set[str] = set()
    cores: set[tuple[str, str]] = set()
    for cpu_dir in sorted(_SYS_CPU.glob("cpu[0-9]*")):
        package = _read_text(cpu_dir / "topology" / "physical_package_id")
        core = _read_text(cpu_dir / "topology" / "core_id")
        if package is None or core is None:
            continue
        packages.add(package.strip())
        cores.add((package.strip(), core.strip()))
    if cores:
        return len(packages), len(cores)
    ids = {
        (block["physical id"], block["core id"]) for block in blocks if "physical id" in block and "core id" in block
    }
    if ids:
        return len({package for package, _ in ids}), len(ids)
    return None, _psutil_cores(logical=False)


def _psutil_cores(logical: bool) -> int | None:
    try:
        import psutil

        return psutil.cpu_count(logical=logical)
    except Exception:
        return None


def _logical_threads(blocks: list[dict[str, str]]) -> int | None:
    if blocks and "processor" in blocks[0]:
        return len(blocks)
    return os.cpu_count() or _psutil_cores(logical=True)


def _usable_threads() -> int | None:
    # The affinity mask is what a process may actually run on (taskset, cpusets, Slurm).
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count()


def _cgroup_cpu_limit() -> float | None:
    """CPUs allowed by a cgroup v2 quota ('200000 100000' in cpu.max means 2 CPUs)."""
    text = _read_text(Path("/sys/fs/cgroup/cpu.max"))
    if not text:
        return None
    quota, _, period = text.strip().partition(" ")
    if quota == "max" or not period:
        return None
    try:
        return int(quota) / int(period)
    except ValueError:
        return None


def _cgroup_memory_limit(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Bytes a cgroup v2 memory.max (or v1 memory.limit_in_bytes) allows; None when unlimited or unknown."""
    text = _read_text(root / "memory.max") or _read_text(root / "memory" / "memory.limit_in_bytes")
    value = _int_or_none((text or "").strip() or None)
    # cgroup v1 says "unlimited" with a huge number near 2**63
    return value if value is not None and value < 2**60 else None


def _numa_nodes() -> int | None:
    nodes = list(_SYS_NODE.glob("node[0-9]*"))
    return len(nodes) if nodes else None


# --- clocks ------------------------------------------------------------------------------------


def _clocks(blocks: list[dict[str, str]]) -> tuple[float | None, float | None, str]:
    """(base MHz, max MHz, where they came from). cpufreq sysfs is authoritative when present."""
    cpufreq = _SYS_CPU / "cpu0" / "cpufreq"
    max_khz = _int_or_none((_read_text(cpufreq / "cpuinfo_max_freq") or "").strip() or None)
    base_khz = _int_or_none((_read_text(cpufreq / "base_frequency") or "").strip() or None)
    if max_khz:
        base_mhz = base_khz / 1000 if base_khz else _model_name_ghz(blocks)
        base_note = "cpufreq base_frequency" if base_khz else "model name" if base_mhz else "unknown"
        return base_mhz, max_khz / 1000, f"max: cpufreq cpuinfo_max_freq; base: {base_note}"
    nominal_mhz = _model_name_ghz(blocks)
    if nominal_mhz:
        return nominal_mhz, None, "base: nominal clock in the model name; max: unknown (no cpufreq sysfs)"
    mhz_values = [mhz for block in blocks if (mhz := _float_or_none(block.get("cpu MHz"))) is not None]
    if mhz_values:
        return (
            max(mhz_values),
            None,
            "base: /proc/cpuinfo 'cpu MHz' (current clock, or nominal under a hypervisor); "
            "max: unknown (no cpufreq sysfs)",
        )
    return None, None, "unknown: no cpufreq sysfs and no clock in /proc/cpuinfo"


def _model_name_ghz(blocks: list[dict[str, str]]) -> float | None:
    """Intel model names end in '@ 2.60GHz', the nominal base clock."""
    name = blocks[0].get("model name", "") if blocks else ""
    match = re.search(r"@\s*([0-9.]+)\s*GHz", name)
    return float(match.group(1)) * 1000 if match else None


# --- caches and memory -------------------------------------------------------------------------


def _caches() -> tuple[CacheLevel, ...]:
    """Cache sizes from /sys/devices/system/cpu/cpu0/cache, with instance counts over all CPUs."""
    levels: list[CacheLevel] = []
    for index_dir in sorted((_SYS_CPU / "cpu0" / "cache").glob("index[0-9]*")):
        level = _int_or_none((_read_text(index_dir / "level") or "").strip() or None)
        kind = (_read_text(index_dir / "type") or "").strip()
        size_bytes = _parse_size((_read_text(index_dir / "size") or "").strip())
        if level is None or size_bytes is None:
            continue
        name = f"L{level}" + {"Data": "d", "Instruction": "i"}.get(kind, "")
        levels.append(CacheLevel(name, level, size_bytes, _cache_instances(index_dir.name)))
    return tuple(levels)


def _cache_instances(index_name: str) -> int:
    """How many distinct copies of this cache exist: distinct shared_cpu_list values over all CPUs."""
    sharing: set[str] = set()
    for cpu_dir in _SYS_CPU.glob("cpu[0-9]*"):
        shared = _read_text(cpu_dir / "cache" / index_name / "shared_cpu_list")
        if shared is not None:
            sharing.add(shared.strip())
    return max(1, len(sharing))


def _parse_size(text: str) -> int | None:
    """'32K' / '1024K' / '32M' as sysfs writes them, to bytes."""
    match = re.fullmatch(r"(\d+)\s*([KMG]?)", text.upper())
    if not match:
        return None
    scale = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[match.group(2)]
    return int(match.group(1)) * scale


def _memory() -> tuple[int | None, int | None]:
    try:
        import psutil

        memory = psutil.virtual_memory()
        return int(memory.total), int(memory.available)
    except Exception:
        return _meminfo()


def _meminfo() -> tuple[int | None, int | None]:
    values: dict[str, int] = {}
    for line in (_read_text(Path("/proc/meminfo")) or "").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key] = int(parts[0]) * 1024  # /proc/meminfo counts kB
    return values.get("MemTotal"), values.get("MemAvailable")
