"""Run one job in a fresh spawned process with a timeout, relaying its progress messages.

Every point of a sweep runs this way: runtimes in one process disturb each other (thread pools
that spin and pin; measured here, PyTorch eager ran 3x slower after an ONNX Runtime session had
run in the same process), and a crash, an out-of-memory kill or a hang costs one point, not the run.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

POLL_S = 0.2
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class JobOutcome:
    """`ok` with the job's return value, or a failure with a reason a person can read."""

    ok: bool
    value: Any = None
    reason: str | None = None
    wall_s: float = 0.0
    where: dict = field(default_factory=dict)  # where it ran, when not here (a cluster node): kept with the point


class _Reporter:
    """Handed to the job in the child: `report(dict)` sends a progress message to the parent."""

    def __init__(self, connection):
        self.connection = connection

    def __call__(self, message: dict) -> None:
        try:
            self.connection.send(("progress", message))
        except (BrokenPipeError, OSError):
            pass


def _die_with_parent(parent_pid: int) -> None:
    """Linux: this process gets SIGKILL when its parent dies. A parent killed outright (an OOM kill, a
    Ray worker cancelled or lost with a cluster node) can run no `finally`, and the point it started
    would go on measuring beside whatever runs next."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # no prctl here: the parent's own kill still covers its exits
        return
    if os.getppid() != parent_pid:  # it died before the line above took effect
        os._exit(1)


def _child(job: Callable, args: tuple, connection, parent_pid: int | None = None) -> None:
    # The parent owns Ctrl-C: it decides to stop the run and kills this process itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    try:
        connection.send(("result", job(*args, report=_Reporter(connection))))
    except BaseException as error:  # every failure goes back to the parent as a recorded reason
        connection.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        connection.close()


def run_isolated(
    job: Callable, args: tuple, timeout_s: float, on_progress: Callable[[dict], None] | None = None
) -> JobOutcome:
    """Run `job(*args, report=...)` in a new process; never raises for the job's own failures.

    KeyboardInterrupt in the parent kills the child and propagates, so the caller can close the run.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    # Not daemonic: a point may start processes of its own (replicas). The finally below kills it.
    process = context.Process(target=_child, args=(job, args, sender, os.getpid()), daemon=False)
    started = time.perf_counter()
    process.start()
    sender.close()
    try:
        return _wait(process, receiver, started, timeout_s, on_progress)
    finally:
        if process.is_alive():
            process.kill()
        process.join(5)
        receiver.close()


def _wait(process, receiver, started: float, timeout_s: float, on_progress) -> JobOutcome:
    while True:
        elapsed = time.perf_counter() - started
        if elapsed > timeout_s:
            return JobOutcome(
                False, reason=f"timed out after {timeout_s:.0f} s (hung or too slow); killed", wall_s=elapsed
            )
        if not receiver.poll(POLL_S):
            if not process.is_alive() and not receiver.poll(0):
                process.join(1)
                return JobOutcome(False, reason=_death_reason(process.exitcode), wall_s=elapsed)
            continue
        try:
            kind, payload = receiver.recv()
        except EOFError:
            process.join(1)
            return JobOutcome(False, reason=_death_reason(process.exitcode), wall_s=time.perf_counter() - started)
        if kind == "progress":
            if on_progress:
                on_progress(payload)
            continue
        wall = time.perf_counter() - started
        return JobOutcome(
            kind == "result", payload if kind == "result" else None, None if kind == "result" else payload, wall
        )


def _death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.Signals._value2member_map_ else str(-exitcode)
        hint = " (out of memory?)" if -exitcode == signal.SIGKILL else ""
        return f"the process died from signal {name}{hint} before answering"
    return f"the process exited with code {exitcode} before answering"
