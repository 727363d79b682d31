"""A machine's measured ceilings: matmul FLOP/s per dtype and memory bandwidth, the roof that MFU
and the roofline are read against.

They belong to the machine, not to a run, and measuring them takes about 25 s on a 2-core CPU
(longer than the one point a `hwfit profile --batch 2` measures). So they are kept in the hwfit
cache, keyed by what they depend on (the host, its CPU and GPUs, the cores this process may use,
and the numpy and torch that run the kernels), and reused for `MAX_AGE_S`; `fresh` measures them
again. Each device's entry says when it was measured (`measured_at`), and a run records the
entries it used. A failed measurement is not kept: the next run tries again.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hwfit.core import cache_dir
from hwfit.profile.environment import capture_environment
from hwfit.profile.isolation import run_isolated
from hwfit.store import Environment

CEILINGS_CACHE = "ceilings"
MAX_AGE_S = 7 * 24 * 3600.0  # a week: long enough to spare every run the 25 s, short enough for a changed host


def ceilings_job(device: str, quick: bool = False, report=None) -> dict:
    """The ceilings of one device, as a sweep keeps them (run in a process of its own)."""
    from hwfit.hardware import measure_ceilings

    found: dict = {"matmul_flops": {}, "mem_bandwidth": None}
    for ceiling in measure_ceilings(device, quick=quick):
        if ceiling.metric == "matmul_flops":
            found["matmul_flops"][ceiling.dtype] = ceiling.value
        elif ceiling.metric in ("mem_bandwidth", "device_mem_bandwidth"):
            found["mem_bandwidth"] = ceiling.value
    return found


def cached_ceilings(
    devices: list[str] | set[str],
    timeout_s: float,
    quick: bool = False,
    fresh: bool = False,
    environment: Environment | None = None,
) -> dict[str, dict]:
    """device -> {matmul_flops: {dtype: flop/s}, mem_bandwidth, measured_at, quick}, or {error}:
    reused from the cache where measured within MAX_AGE_S (a full measurement serves a quick
    request, not the other way round), measured now (each device in a process of its own) where not."""
    path = _cache_path(environment or capture_environment())
    kept = {} if fresh else _read(path)
    found: dict[str, dict] = {}
    for device in sorted(devices):
        entry = kept.get(device)
        if _usable(entry, quick):
            found[device] = entry
            continue
        outcome = run_isolated(ceilings_job, (device, quick), timeout_s)
        if not outcome.ok:
            found[device] = {"error": outcome.reason}
            continue
        found[device] = {**outcome.value, "measured_at": _now().isoformat(timespec="seconds"), "quick": quick}
        kept[device] = found[device]
        _write(path, kept)
    return found


def _cache_path(environment: Environment) -> Path:
    parts = [
        environment.hostname_hash,
        environment.cpu_model or "cpu",
        *environment.gpu_names,
        f"cores{environment.extra.get('usable_cores')}",
        f"numpy{environment.numpy}",
        f"torch{environment.torch}",
    ]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in "-".join(parts))[:160]
    return cache_dir(CEILINGS_CACHE) / f"{name}.json"


def _usable(entry: dict | None, quick: bool) -> bool:
    if not isinstance(entry, dict) or "error" in entry or (entry.get("quick") and not quick):
        return False
    try:
        measured = datetime.fromisoformat(entry["measured_at"])
    except (KeyError, TypeError, ValueError):
        return False
    return timedelta(0) <= _now() - measured <= timedelta(seconds=MAX_AGE_S)


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # none yet, or a broken file: measured again
    return data if isinstance(data, dict) else {}


def _write(path: Path, kept: dict) -> None:
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(kept, indent=1, sort_keys=True))
    partial.replace(path)  # atomic: two runs at once never leave half a file


def _now() -> datetime:
    return datetime.now(timezone.utc)
