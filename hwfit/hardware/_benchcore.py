"""Shared pieces of the microbenchmarks: the `Ceiling` result, run settings, timing and sizing."""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hwfit.core import Figure

Progress = Callable[[str], None]

MIB = 1024**2
_CALIBRATION_STEPS = 5


@dataclass(frozen=True)
class BenchConfig:
    """How hard to push: `quick` keeps a whole CPU run within a few seconds for tests."""

    quick: bool
    matmul_target_s: float  # wall time one timed CPU matmul should take
    matmul_repeats: int
    matmul_start_n: int  # first size of the calibration that grows n to the target time
    triad_repeats: int
    gpu_matmul_target_s: float
    gpu_matmul_start_n: int
    gpu_copy_bytes: int
    host_copy_bytes: int
    gpu_repeats: int

    @classmethod
    def for_mode(cls, quick: bool) -> "BenchConfig":
        if quick:
            return cls(
                quick=True,
                matmul_target_s=0.05,
                matmul_repeats=3,
                matmul_start_n=256,
                triad_repeats=3,
                gpu_matmul_target_s=0.01,
                gpu_matmul_start_n=1024,
                gpu_copy_bytes=256 * MIB,
                host_copy_bytes=64 * MIB,
                gpu_repeats=5,
            )
        return cls(
            quick=False,
            matmul_target_s=0.25,
            matmul_repeats=7,
            matmul_start_n=1024,
            triad_repeats=20,
            gpu_matmul_target_s=0.05,
            gpu_matmul_start_n=2048,
            gpu_copy_bytes=1024 * MIB,
            host_copy_bytes=256 * MIB,
            gpu_repeats=20,
        )


@dataclass(frozen=True)
class Ceiling:
    """One measured ceiling of a device, beside the spec (GPU) or computed peak (CPU) when there is one."""

    device: str  # "cpu", "cuda:0"
    metric: str  # matmul_flops, mem_bandwidth, h2d_bandwidth_pinned, ...
    dtype: str | None
    value: float
    unit: str  # FLOP/s, OP/s, bytes/s
    method: str  # sizes, repeats, library, threads
    how: str = "measured"
    spec: Figure | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """measured / spec, or None without a spec."""
        if self.spec is None or not self.spec.value:
            return None
        return self.value / self.spec.value

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "metric": self.metric,
            "dtype": self.dtype,
            "value": self.value,
            "unit": self.unit,
            "how": self.how,
            "method": self.method,
            "spec": self.spec.to_dict() if self.spec else None,
            "ratio": self.ratio,
            "details": self.details,
        }


def timings(run: Callable[[], None], repeats: int) -> list[float]:
    """`repeats` wall-clock timings of `run`, in seconds."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return seconds


def best_seconds(run: Callable[[], None], repeats: int) -> float:
    """Fastest of `repeats` timings: on a shared machine the minimum is the least disturbed run."""
    return min(timings(run, repeats))


def calibrate(
    make: Callable[[int], Callable[[], None]],
    time_best: Callable[[Callable[[], None]], float],
    n_start: int,
    n_max: int,
    target_s: float,
) -> tuple[int, Callable[[], None]]:
    """Grow a square size n (multiple of 128) until one call takes at least half of target_s.

    Growing step by step, rather than extrapolating from one probe, keeps a probe that a busy
    neighbour slowed down from leaving the real run at a size too small to reach the ceiling.
    """
    n = n_start
    for _ in range(_CALIBRATION_STEPS):
        run = make(n)
        run()  # warm-up: thread pools start, pages fault in, kernels are picked for this shape
        seconds = time_best(run)
        if seconds >= target_s / 2 or n >= n_max:
            return n, run
        grown = 128 * math.ceil(n * (target_s / seconds) ** (1 / 3) / 128)
        n = min(n_max, max(n + 128, grown))
    run = make(n)
    run()
    return n, run


def matmul_flop(n: int) -> float:
    return 2.0 * n**3


def import_torch() -> Any:
    """torch if it is installed, else None: every benchmark that can do without it must."""
    try:
        import torch
    except ImportError:
        return None
    return torch
