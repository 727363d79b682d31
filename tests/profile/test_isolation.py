"""A point that crashes, hangs or raises is recorded as failed with its reason; progress flows."""

import os
import signal
import subprocess
import sys
import time

import pytest

from hwfit.profile.isolation import run_isolated


def _answer(x, report=None):
    report({"step": 1})
    return x * 2


def _raise(report=None):
    raise MemoryError("could not allocate 40 GiB")


def _killed(report=None):
    os.kill(os.getpid(), signal.SIGKILL)


HANG_S = 60


def _hang(report=None):
    time.sleep(HANG_S)


def test_result_and_progress_come_back():
    seen = []
    outcome = run_isolated(_answer, (21,), timeout_s=60, on_progress=seen.append)
    assert outcome.ok and outcome.value == 42 and seen == [{"step": 1}]


def test_exception_is_a_reason():
    outcome = run_isolated(_raise, (), timeout_s=60)
    assert not outcome.ok and "MemoryError: could not allocate 40 GiB" in outcome.reason


def test_killed_process_is_a_reason():
    outcome = run_isolated(_killed, (), timeout_s=60)
    assert not outcome.ok and "SIGKILL" in outcome.reason


def test_hang_is_cut_at_the_timeout():
    started = time.perf_counter()
    outcome = run_isolated(_hang, (), timeout_s=3)
    elapsed = time.perf_counter() - started
    assert not outcome.ok and "timed out after 3 s" in outcome.reason
    # cut by the timeout: not before it, and long before the child would have ended by itself
    assert 3 <= elapsed < HANG_S / 2


PARENT = """
import sys, time
from hwfit.profile.isolation import run_isolated

def _write_pid_and_hang(path, report=None):
    import os
    open(path, "w").write(str(os.getpid()))
    time.sleep(60)

if __name__ == "__main__":
    run_isolated(_write_pid_and_hang, (sys.argv[1],), 120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie waiting to be reaped is dead too
        return stat.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_point_process_dies_with_a_parent_killed_outright(tmp_path):
    script, pid_file = tmp_path / "parent.py", tmp_path / "child.pid"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), str(pid_file)])
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and parent.poll() is None, "the point process never started"
            time.sleep(0.1)
        child = int(pid_file.read_text())
        assert _alive(child)
        parent.kill()  # SIGKILL: no finally of the parent runs
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child), "the point's process outlived the process that started it"
    finally:
        if parent.poll() is None:
            parent.kill()
