"""Watching the devices for a window: the CPU's busy share from the kernel's counters (exact over the
window), each GPU's NVML utilization and GPM metrics, the audited processes (named, found behind a
served URL, or a COMMAND started here) and what each served pool ran. The window ends at its length,
when COMMAND exits, when every named process is gone, when a server stops answering or a GPU is lost —
always with what it has, and the reason."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import psutil

from hwfit.audit.served import PoolWindow, ServedPool, listening_pid, pool_windows, read_metrics, served_pools
from hwfit.audit.torch_flops import FLOPS_FILE_ENV
from hwfit.audit.waterfall import AuditError
from hwfit.core import Device, HwfitError
from hwfit.telemetry import GpmReader, ProcessUsage, ProcessWatch, Scrape, busy_share, gpu_processes, sample_device

MAX_SERIES_POINTS = 600  # a long window keeps at most this many points per device (pairs merged)


@dataclass(frozen=True)
class WatchSpec:
    seconds: float | None  # None: until COMMAND exits or the named processes are gone
    devices: tuple[str, ...]
    serve_urls: tuple[str, ...] = ()
    pids: tuple[int, ...] = ()
    command: tuple[str, ...] = ()
    interval_s: float | None = None  # None: from the window (0.5 s, sparser for long windows)
    token: str | None = None
    count_flops: bool = False  # run a `python SCRIPT.py` COMMAND under torch's FLOP counter

    def tick_s(self) -> float:
        if self.interval_s is not None:
            return self.interval_s
        if self.seconds is None:
            return 0.5
        return max(0.5, min(60.0, self.seconds / MAX_SERIES_POINTS))


@dataclass
class DeviceSeries:
    """One device over the window: busy share per tick (merged in pairs past MAX_SERIES_POINTS)."""

    device: str
    points: list[tuple[float, float]] = field(default_factory=list)  # (seconds from start, busy share)
    gpm: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # metric -> (seconds, value)
    gpm_reason: str = ""
    peak_memory_bytes: int | None = None
    lost: str = ""

    def add(self, at_s: float, busy: float) -> None:
        self.points.append((at_s, busy))
        if len(self.points) > MAX_SERIES_POINTS:
            self.points = [
                ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
                for a, b in zip(self.points[::2], self.points[1::2], strict=False)
            ]

    def mean_busy(self) -> float | None:
        return sum(v for _, v in self.points) / len(self.points) if self.points else None

    def gpm_mean(self, metric: str) -> float | None:
        """Duration-weighted mean of a GPM metric over the windows NVML answered."""
        values = self.gpm.get(metric) or []
        total = sum(seconds for seconds, _ in values)
        return sum(seconds * value for seconds, value in values) / total if total > 0 else None


@dataclass
class Observation:
    started_at: str
    window_s: float
    ended_because: str
    cpu_busy: float | None  # whole window, from /proc/stat
    logical_cpus: int
    series: dict[str, DeviceSeries]
    processes: list[ProcessUsage]
    gpu_processes: dict[str, list[dict[str, Any]]]
    pools: list[PoolWindow]
    command_exit: int | None = None
    command_flops: float | None = None  # counted by torch.utils.flop_counter (--count-flops)
    notes: list[str] = field(default_factory=list)

    def process_cpu_s(self) -> float:
        return sum(usage.cpu_s for usage in self.processes)


class _Servers:
    """The served URLs: their pools, first scrape, and the last scrape that answered."""

    def __init__(self, urls: tuple[str, ...], token: str | None) -> None:
        self.urls, self.token = urls, token
        self.first: dict[str, Scrape] = {}
        self.last: dict[str, Scrape] = {}
        self.pools: dict[str, list[ServedPool]] = {}
        for url in urls:
            metrics = read_metrics(url, token)
            self.first[url] = self.last[url] = metrics
            self.pools[url] = served_pools(url, metrics)
            if not self.pools[url]:
                raise AuditError(f"{url} answers /metrics but lists no hwfit_pool_info: is it `hwfit serve`?")

    def refresh(self) -> str:
        """Scrape each again; the reason to end the window when one stopped answering, else ''."""
        for url in self.urls:
            try:
                self.last[url] = read_metrics(url, self.token)
            except HwfitError as error:
                return f"the server at {url} stopped answering ({error})"
        return ""

    def windows(self) -> list[PoolWindow]:
        return [w for url in self.urls for w in pool_windows(self.pools[url], self.first[url], self.last[url])]


def watch(spec: WatchSpec, on_tick: Callable[[float, float | None], None] | None = None) -> Observation:
    """Watch for the window; `on_tick(elapsed_s, total_s)` after each tick (for a progress bar)."""
    if spec.seconds is None and not spec.command and not spec.pids:
        raise AuditError("an audit needs a window: --seconds N, --pid PID (until it exits) or -- COMMAND")
    if spec.seconds is not None and not spec.seconds > 0:
        raise AuditError(f"--seconds must be > 0, got {spec.seconds}")
    servers = _Servers(spec.serve_urls, spec.token)
    pids = list(spec.pids)
    for url in spec.serve_urls:
        pid = listening_pid(url)
        if pid is not None and pid not in pids:
            pids.append(pid)
    series = {device: DeviceSeries(device) for device in spec.devices}
    gpm = _gpm_readers(spec.devices, series)
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    cpu_first = cpu_last = psutil.cpu_times()
    start = time.monotonic()
    flops_file = _flops_file() if spec.count_flops else None
    child = _start_command(spec, flops_file) if spec.command else None
    if child is not None:
        pids.append(child.pid)
    processes = ProcessWatch(pids)
    if pids:
        try:
            processes.start()
        except ProcessLookupError as error:
            raise AuditError(str(error)) from None
    ended = ""
    notes: list[str] = []
    tick = spec.tick_s()
    try:
        while not ended:
            elapsed = time.monotonic() - start
            left = (spec.seconds - elapsed) if spec.seconds is not None else tick
            time.sleep(max(0.0, min(tick, left)))
            elapsed = time.monotonic() - start
            cpu_now = psutil.cpu_times()
            _sample_devices(series, gpm, elapsed, busy_share(cpu_last, cpu_now))
            cpu_last = cpu_now
            if pids:
                processes.poll()
            ended = _why_end(spec, elapsed, child, processes, servers, series)
            if on_tick is not None:
                on_tick(elapsed, spec.seconds)
    except KeyboardInterrupt:
        ended = "stopped by Ctrl-C"
    finally:
        window_s = time.monotonic() - start
        command_exit = _stop_child(child, notes)
        for reader in gpm.values():
            reader.close()
    cpu_busy = busy_share(cpu_first, cpu_last)
    return Observation(
        started_at=started_at,
        window_s=window_s,
        ended_because=ended,
        cpu_busy=cpu_busy,
        logical_cpus=psutil.cpu_count() or 1,
        series=series,
        processes=list(processes.usage.values()),
        gpu_processes=_gpu_process_rows(spec.devices),
        pools=servers.windows(),
        command_exit=command_exit,
        command_flops=_read_flops(flops_file, notes),
        notes=notes,
    )


def _flops_file() -> str:
    """An empty file the counted command writes its total to."""
    handle, path = tempfile.mkstemp(suffix=".json", prefix="hwfit-audit-flops-")
    os.close(handle)
    return path


def _start_command(spec: WatchSpec, flops_file: str | None) -> subprocess.Popen:
    command = list(spec.command)
    if flops_file is None:
        return subprocess.Popen(command)
    if len(command) < 2 or "python" not in os.path.basename(command[0]) or not command[1].endswith(".py"):
        raise AuditError(f"--count-flops runs `python SCRIPT.py ...`; got {' '.join(command)!r}")
    wrapped = [command[0], "-m", "hwfit.audit.torch_flops", *command[1:]]
    return subprocess.Popen(wrapped, env={**os.environ, FLOPS_FILE_ENV: flops_file})


def _read_flops(flops_file: str | None, notes: list[str]) -> float | None:
    if flops_file is None:
        return None
    try:
        with open(flops_file) as source:
            text = source.read()
        os.unlink(flops_file)
        return float(json.loads(text)["flops"]) if text else None
    except (OSError, ValueError, KeyError) as error:
        notes.append(f"the command's FLOP count could not be read ({error})")
        return None


def _gpm_readers(devices: tuple[str, ...], series: dict[str, DeviceSeries]) -> dict[str, GpmReader]:
    readers = {}
    for device in devices:
        parsed = Device.parse(device)
        if parsed.is_gpu and parsed.index is not None:
            reader = GpmReader(parsed.index)
            if reader.supported:
                reader.sample()  # the first sample: metrics start from here
                readers[device] = reader
            else:
                series[device].gpm_reason = reader.reason
    return readers


def _sample_devices(series: dict[str, DeviceSeries], gpm: dict[str, GpmReader], at_s: float, cpu: float | None) -> None:
    for device, line in series.items():
        if line.lost:
            continue
        if device == "cpu":
            if cpu is not None:
                line.add(at_s, cpu)
            continue
        sample = sample_device(device)
        if sample.utilization is None:
            line.lost = f"{device} stopped answering NVML at {at_s:.1f} s"
            continue
        line.add(at_s, sample.utilization)
        if sample.memory_used_bytes is not None:
            line.peak_memory_bytes = max(line.peak_memory_bytes or 0, sample.memory_used_bytes)
        reader = gpm.get(device)
        window = reader.sample() if reader is not None else None
        if window is not None:
            for metric, value in window.values.items():
                if value is not None:
                    line.gpm.setdefault(metric, []).append((window.seconds, value))


def _why_end(spec: WatchSpec, elapsed: float, child, processes: ProcessWatch, servers: _Servers, series) -> str:
    if spec.seconds is not None and elapsed >= spec.seconds - 1e-3:
        return f"the {spec.seconds:g} s window ended"
    if child is not None and child.poll() is not None:
        return f"the command exited (code {child.returncode})"
    if spec.pids and not spec.command and not processes.alive:
        return "every audited process exited"
    lost = [line.lost for line in series.values() if line.lost]
    if lost:
        return lost[0]
    return servers.refresh()


def _stop_child(child, notes: list[str]) -> int | None:
    if child is None:
        return None
    if child.poll() is None:
        notes.append("the command was still running when the window ended: stopped (SIGTERM)")
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return child.returncode


def _gpu_process_rows(devices: tuple[str, ...]) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {}
    for device in devices:
        parsed = Device.parse(device)
        if parsed.is_gpu and parsed.index is not None:
            rows[device] = [
                {"pid": p.pid, "sm_share": p.sm_share, "memory_bytes": p.memory_bytes}
                for p in gpu_processes(parsed.index)
            ]
    return rows
