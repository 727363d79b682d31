"""A point that crashes, hangs or raises is recorded as failed with its reason; progress flows."""

import os
import signal
import time

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
