"""Microbenchmarks that measure this machine's ceilings: matmul FLOP/s per dtype and memory bandwidth.

CPU (microbench_cpu): square matmuls through numpy's BLAS and torch (best of the two), and a
STREAM-style triad `a = b + s*c` over arrays at least 4x the last-level cache. GPU
(microbench_cuda): torch.cuda matmuls per dtype, device-memory copy, and host<->device copies
from pageable and pinned memory, timed with CUDA events. Every result is a `Ceiling` saying how
it was measured and how it compares to the catalog (GPUs) or the computed peak (CPUs).
"""

from hwfit.core import Device, UnknownDevice
from hwfit.hardware._benchcore import BenchConfig, Ceiling, Progress
from hwfit.hardware.cpu import discover_cpu
from hwfit.hardware.microbench_cpu import measure_cpu, triad_array_bytes
from hwfit.hardware.microbench_cuda import measure_cuda

__all__ = ["BenchConfig", "Ceiling", "measure_ceilings", "triad_array_bytes"]


def measure_ceilings(device: str = "cpu", quick: bool = False, progress: Progress | None = None) -> list[Ceiling]:
    """Measure `device` ("cpu" or "cuda:N"). Raises UnknownDevice / BenchmarkError when it cannot run."""
    config = BenchConfig.for_mode(quick)
    say = progress or (lambda message: None)
    parsed = Device.parse(device)
    if parsed.is_cpu:
        return measure_cpu(discover_cpu(), config, say)
    if parsed.is_gpu:
        return measure_cuda(parsed.index, config, say)
    raise UnknownDevice(f"unknown device {device!r}: expected 'cpu' or 'cuda:N' (see `hwfit devices`)")
