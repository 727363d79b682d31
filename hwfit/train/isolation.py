"""One experiment in a fresh process: a crash, a hang or an out-of-memory there ends that experiment
only, and no experiment inherits another's compiled graphs, allocator state or warm caches."""

from __future__ import annotations

import multiprocessing
import time
import traceback
from dataclasses import dataclass
from typing import Any

POLL_S = 0.1


@dataclass(frozen=True)
class Outcome:
    """What the child sent back: `value` when ok, else the error's type name and message."""

    ok: bool
    value: Any = None
    error_type: str | None = None
    message: str | None = None
    wall_s: float = 0.0


def _child(job: Any, args: tuple, sender: Any) -> None:
    try:
        sender.send(("ok", job(*args)))
    except BaseException as error:  # everything goes back to the parent as a result
        detail = str(error) or traceback.format_exc(limit=3)
        sender.send(("error", (type(error).__name__, detail)))
    finally:
        sender.close()


def run_in_process(job: Any, args: tuple, timeout_s: float) -> Outcome:
    """`job(*args)` in a spawned process (job must be importable by name); never raises for its failures."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(job, args, sender), daemon=False)
    started = time.perf_counter()
    process.start()
    sender.close()
    try:
        while True:
            elapsed = time.perf_counter() - started
            if elapsed > timeout_s:
                return Outcome(False, error_type="Timeout", message=f"timed out after {timeout_s:.0f} s; killed")
            if receiver.poll(POLL_S):
                try:
                    kind, payload = receiver.recv()
                except EOFError:
                    break
                wall = time.perf_counter() - started
                if kind == "ok":
                    return Outcome(True, value=payload, wall_s=wall)
                return Outcome(False, error_type=payload[0], message=payload[1], wall_s=wall)
            if not process.is_alive() and not receiver.poll(0):
                break
        process.join(1)
        return Outcome(
            False,
            error_type="Died",
            message=f"the process died with exit code {process.exitcode} (killed for memory? a native crash?)",
            wall_s=time.perf_counter() - started,
        )
    finally:
        if process.is_alive():
            process.kill()
        process.join(5)
        receiver.close()
