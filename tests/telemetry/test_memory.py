"""The peak resident set is this process image's own, and a window's peak can be restarted."""

import multiprocessing
from pathlib import Path

import pytest

from hwfit.telemetry.memory import peak_rss_bytes, restart_peak_rss, rss_bytes

MiB = 2**20
needs_proc = pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/self/clear_refs (Linux 4.0+)"
)


def _touched(size: int) -> bytearray:
    block = bytearray(size)
    block[::4096] = b"\x01" * len(block[::4096])  # every page resident
    return block


def _child_peak(queue) -> None:
    queue.put(peak_rss_bytes())


@needs_proc
def test_a_restarted_peak_forgets_memory_freed_before_it():
    block = _touched(200 * MiB)
    del block
    assert peak_rss_bytes()[0] >= 200 * MiB
    assert restart_peak_rss()
    peak, how = peak_rss_bytes()
    assert "VmHWM" in how
    assert peak < rss_bytes() + 50 * MiB


@needs_proc
def test_a_spawned_process_does_not_report_its_parents_memory_as_its_own():
    held = _touched(400 * MiB)  # ru_maxrss of a spawned child would start at this
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_child_peak, args=(queue,))
    child.start()
    peak, _ = queue.get(timeout=60)
    child.join(60)
    assert rss_bytes() >= 400 * MiB
    assert peak < 300 * MiB, f"the child reported {peak / MiB:.0f} MiB while holding only an interpreter"
    del held
