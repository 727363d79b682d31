"""This process's resident memory and its peak, with a peak that can be restarted.

`resource.getrusage(...).ru_maxrss` is not this process's own peak: on Linux it also keeps the
high-water mark of the memory image the process had before `exec`. A process started with
multiprocessing's "spawn" is forked from its parent first, so its ru_maxrss starts at the
parent's resident set: a measurement process spawned by a parent that had built a model
reported the parent's memory as its own (an A/A `hwfit check` showed -80% peak memory).
`VmHWM` in /proc/self/status is the high-water mark of the current image only, and writing 5 to
/proc/self/clear_refs (Linux 4.0+) restarts it at the current resident set, so a window's peak is
the window's own. Elsewhere the functions fall back to psutil and ru_maxrss and say so.
"""

from __future__ import annotations

import re
import resource
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def rss_bytes() -> int:
    """This process's resident set now."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def restart_peak_rss() -> bool:
    """Make the peak start again at the current resident set; False where the OS cannot."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> tuple[int, str]:
    """This process image's peak resident set since start or since `restart_peak_rss`, and how it was read."""
    try:
        match = re.search(r"^VmHWM:\s+(\d+)\s+kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        match = None
    if match:
        return int(match.group(1)) * 1024, "VmHWM of /proc/self/status"
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux and BSD report KiB
    return int(peak_kib) * 1024, "ru_maxrss (may include the parent's memory before exec)"
