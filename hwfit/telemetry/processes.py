"""What given processes (and their children) take of the CPU over a window: CPU seconds (user + system,
from the kernel's accounting), time spent runnable but waiting for a core (the run queue, from
/proc/PID/schedstat: contention), and peak resident memory. A process that exits keeps what it had
taken; `alive` says whether any is left.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil


@dataclass
class ProcessUsage:
    """One process's share of a window (children are rows of their own, with `parent` set)."""

    pid: int
    name: str
    cmdline: str
    parent: int | None = None
    cpu_s: float = 0.0  # user + system seconds in the window
    run_queue_wait_s: float | None = None  # runnable but not running (None: schedstat unreadable)
    peak_rss_bytes: int = 0
    exited: bool = False
    _first_cpu_s: float | None = field(default=None, repr=False)
    _first_wait_s: float | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if not key.startswith("_")}


def run_queue_wait_s(pid: int) -> float | None:
    """Seconds process `pid` (its main thread's schedstat covers the whole thread group on Linux) has
    spent runnable but waiting for a CPU; None where /proc/PID/schedstat is not there."""
    try:
        fields = Path(f"/proc/{pid}/schedstat").read_text().split()
        return int(fields[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def _thread_group_wait_s(process: psutil.Process) -> float | None:
    """Run-queue wait summed over every thread of the process (/proc/PID/task/TID/schedstat)."""
    total, found = 0.0, False
    try:
        threads = process.threads()
    except (psutil.Error, OSError):
        return run_queue_wait_s(process.pid)
    for thread in threads:
        try:
            fields = Path(f"/proc/{process.pid}/task/{thread.id}/schedstat").read_text().split()
            total += int(fields[1]) / 1e9
            found = True
        except (OSError, ValueError, IndexError):
            continue
    return total if found else None


class ProcessWatch:
    """Track `pids` and every child they start, between start() and each poll()."""

    def __init__(self, pids: list[int]) -> None:
        self.roots = list(pids)
        self.usage: dict[int, ProcessUsage] = {}
        self._processes: dict[int, psutil.Process] = {}
        self.started_at: float | None = None

    def start(self) -> None:
        self.started_at = time.monotonic()
        for pid in self.roots:
            try:
                root = psutil.Process(pid)
                children = root.children(recursive=True)
            except psutil.NoSuchProcess:
                raise ProcessLookupError(f"no process {pid}: is it running (see `ps -p {pid}`)?") from None
            self._add(root, None, from_now=True)
            for child in children:
                self._add(child, pid, from_now=True)
        self.poll()

    def poll(self) -> None:
        """Read every tracked process (and adopt new children); a process gone keeps its last figures."""
        for pid in list(self._processes):
            self._read(pid)
        for pid in list(self._processes):
            process = self._processes[pid]
            try:
                children = process.children(recursive=True)
            except psutil.Error:
                continue
            for child in children:
                if child.pid not in self._processes:
                    self._add(child, pid, from_now=False)
                    self._read(child.pid)

    @property
    def alive(self) -> bool:
        return any(not usage.exited for usage in self.usage.values())

    @property
    def cpu_s(self) -> float:
        return sum(usage.cpu_s for usage in self.usage.values())

    @property
    def run_queue_wait_s(self) -> float | None:
        waits = [usage.run_queue_wait_s for usage in self.usage.values() if usage.run_queue_wait_s is not None]
        return sum(waits) if waits else None

    def _add(self, process: psutil.Process, parent: int | None, from_now: bool) -> None:
        """Track `process`: from now (it was there when the window opened), or from its own start (a child
        that appeared in the window: all its CPU time is the window's)."""
        try:
            with process.oneshot():
                name = process.name()
                cmdline = " ".join(process.cmdline())[:200]
                times = process.cpu_times()
        except psutil.Error:
            return
        self._processes[process.pid] = process
        usage = ProcessUsage(process.pid, name, cmdline, parent)
        usage._first_cpu_s = times.user + times.system if from_now else 0.0
        usage._first_wait_s = _thread_group_wait_s(process) if from_now else 0.0
        self.usage[process.pid] = usage

    def _read(self, pid: int) -> None:
        usage = self.usage[pid]
        if usage.exited:
            return
        process = self._processes[pid]
        try:
            with process.oneshot():
                if process.status() == psutil.STATUS_ZOMBIE:
                    raise psutil.NoSuchProcess(pid)
                times = process.cpu_times()
                rss = process.memory_info().rss
            wait = _thread_group_wait_s(process)
        except psutil.Error:
            usage.exited = True
            return
        usage.cpu_s = max(0.0, times.user + times.system - (usage._first_cpu_s or 0.0))
        usage.peak_rss_bytes = max(usage.peak_rss_bytes, rss)
        if wait is not None and usage._first_wait_s is not None:
            usage.run_queue_wait_s = max(0.0, wait - usage._first_wait_s)
