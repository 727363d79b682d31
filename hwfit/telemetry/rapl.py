"""CPU package energy from RAPL through Linux powercap (`/sys/class/powercap/intel-rapl:N/energy_uj`).

AMD Zen exposes its package counter through the same intel_rapl driver. Since Linux 5.10 the
`energy_uj` files are readable by root only (CVE-2020-8694, "Platypus"); many VMs expose no
powercap at all. The counter wraps at `max_energy_range_uj`; `RaplCounter` accumulates across wraps.
"""

import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_POWERCAP_ROOT = Path("/sys/class/powercap")
ROOT_ONLY = "RAPL energy_uj is root-only since Linux 5.10 (CVE-2020-8694)"
_PACKAGE_ZONE = re.compile(r"^intel-rapl:\d+$")  # intel-rapl:0; sub-zones (intel-rapl:0:0) are parts of it

Reader = Callable[[Path], str]


def read_sysfs(path: Path) -> str:
    """The default reader; tests pass their own to simulate a kernel that refuses reads."""
    return path.read_text()


@dataclass(frozen=True)
class RaplZone:
    """One RAPL package zone: its name ('package-0'), directory and counter range."""

    name: str
    path: Path
    max_energy_range_uj: int

    @property
    def energy_path(self) -> Path:
        return self.path / "energy_uj"


@dataclass(frozen=True)
class RaplStatus:
    """Whether RAPL can be read here: the package zones, or the reason it cannot."""

    usable: bool
    zones: tuple[RaplZone, ...]
    reason: str | None


def rapl_status(root: Path = DEFAULT_POWERCAP_ROOT, reader: Reader = read_sysfs) -> RaplStatus:
    """Find the package zones under `root` and check their counters can be read. Never raises."""
    if not root.is_dir():
        return RaplStatus(
            False,
            (),
            f"no {root}: RAPL not exposed on this machine (VMs and containers often hide it; "
            f"where present, {ROOT_ONLY})",
        )
    zone_dirs = sorted((path for path in root.iterdir() if _PACKAGE_ZONE.match(path.name)), key=_zone_number)
    if not zone_dirs:
        return RaplStatus(False, (), f"{root} has no intel-rapl package zones (intel_rapl driver not loaded)")
    zones: list[RaplZone] = []
    for zone_dir in zone_dirs:
        zone, reason = _open_zone(zone_dir, reader)
        if zone is None:
            return RaplStatus(False, (), reason)
        zones.append(zone)
    return RaplStatus(True, tuple(zones), None)


def _zone_number(path: Path) -> int:
    return int(path.name.split(":")[1])


def _open_zone(zone_dir: Path, reader: Reader) -> tuple[RaplZone | None, str | None]:
    try:
        name = reader(zone_dir / "name").strip()
        max_range_uj = int(reader(zone_dir / "max_energy_range_uj").strip())
        int(reader(zone_dir / "energy_uj").strip())
    except PermissionError:
        return None, (
            f"{zone_dir}/energy_uj is not readable by uid {os.getuid()}: {ROOT_ONLY}; "
            f"run as root or grant read access to the energy_uj files"
        )
    except (OSError, ValueError) as error:
        return None, f"cannot read RAPL zone {zone_dir}: {error}"
    return RaplZone(name=name, path=zone_dir, max_energy_range_uj=max_range_uj), None


class RaplCounter:
    """Energy of all package zones together, in joules since this counter was made, across wraps.

    Each `poll()` adds every zone's increase since the previous poll; a value below the previous
    one means the counter wrapped at `max_energy_range_uj`. Polling more often than the wrap
    period (tens of seconds at full load) keeps the total exact; `EnergyMeter` polls every second.
    """

    def __init__(self, zones: tuple[RaplZone, ...], reader: Reader = read_sysfs) -> None:
        if not zones:
            raise ValueError("RaplCounter needs at least one zone")
        self.zones = zones
        self._reader = reader
        self._lock = threading.Lock()
        self._last_uj = [self._read_uj(zone) for zone in zones]
        self._total_uj = 0
        self.wraps = 0

    def _read_uj(self, zone: RaplZone) -> int:
        return int(self._reader(zone.energy_path).strip())

    def poll(self) -> float:
        """Read every zone and return the accumulated energy in joules."""
        with self._lock:
            for position, zone in enumerate(self.zones):
                now_uj = self._read_uj(zone)
                increase_uj = now_uj - self._last_uj[position]
                if increase_uj < 0:
                    increase_uj += zone.max_energy_range_uj
                    self.wraps += 1
                self._total_uj += increase_uj
                self._last_uj[position] = now_uj
            return self._total_uj / 1e6

    def describe(self) -> str:
        names = ", ".join(f"{zone.path.name} ({zone.name})" for zone in self.zones)
        return f"RAPL powercap package counter: {names}"
