"""CPU ceilings: square matmuls through numpy's BLAS and torch, and a STREAM-style triad in DRAM."""

import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hwfit.core import Figure, format_si
from hwfit.hardware._benchcore import (
    MIB,
    BenchConfig,
    Ceiling,
    Progress,
    best_seconds,
    calibrate,
    import_torch,
    matmul_flop,
    timings,
)
from hwfit.hardware._errors import BenchmarkError
from hwfit.hardware.catalog import cpu_peak_flops, flops_unit
from hwfit.hardware.cpu import CpuInfo

# STREAM convention: a triad moves 3 arrays of float64 (read b, read c, write a); the extra read
# of `a` that write-allocate caches do is not counted, so figures compare with published STREAM.
_TRIAD_ARRAYS = 3
_FLOAT64_BYTES = 8
_TRIAD_MIN_ARRAY_BYTES = 64 * MIB  # floor when the L3 is small or unknown
_TRIAD_UNKNOWN_LLC_ARRAY_BYTES = 256 * MIB
_CPU_MATMUL_N_MAX = 8192


def measure_cpu(cpu: CpuInfo, config: BenchConfig, say: Progress) -> list[Ceiling]:
    peaks = cpu_peak_flops(cpu)
    threads = cpu.usable_threads or 1
    ceilings = []
    for dtype in _cpu_matmul_dtypes(cpu):
        say(f"cpu: matmul {dtype}")
        ceilings.append(_cpu_matmul(dtype, threads, config, peaks.get(dtype), say))
    say("cpu: memory bandwidth (triad)")
    ceilings.append(_cpu_triad(cpu, threads, config))
    return ceilings


def _cpu_matmul_dtypes(cpu: CpuInfo) -> list[str]:
    """fp32 always; bf16/fp16 only with native instructions and torch (numpy has no bf16 matmul)."""
    dtypes = ["fp32"]
    if import_torch() is None:
        return dtypes
    if cpu.has("avx512_bf16") or cpu.has("amx_bf16"):
        dtypes.append("bf16")
    if cpu.has("avx512_fp16") or cpu.has("amx_fp16"):
        dtypes.append("fp16")
    return dtypes


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """Run torch on every usable thread, then put its setting back."""
    torch = import_torch()
    if torch is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _numpy_matmul(n: int, dtype: str) -> Callable[[], None]:
    """numpy has fp32 BLAS only; `dtype` is accepted so both libraries share one signature."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    return lambda: np.matmul(a, b, out=out)


def _torch_matmul(n: int, dtype: str) -> Callable[[], None]:
    torch = import_torch()
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator).to(torch_dtype)
    b = torch.randn(n, n, generator=generator).to(torch_dtype)
    out = torch.empty(n, n, dtype=torch_dtype)

    def run() -> None:
        torch.matmul(a, b, out=out)

    return run


@dataclass(frozen=True)
class _MatmulRun:
    library: str
    n: int
    best_s: float
    median_s: float  # reported beside the best so a reader sees how noisy the machine was

    @property
    def flops(self) -> float:
        return matmul_flop(self.n) / self.best_s


def _run_matmul(
    library: str, make: Callable[[int, str], Callable[[], None]], dtype: str, config: BenchConfig
) -> _MatmulRun:
    """Grow to the size that takes ~target seconds, then time it; best of N."""
    n, run = calibrate(
        lambda size: make(size, dtype),
        lambda candidate: best_seconds(candidate, 2),
        config.matmul_start_n,
        _CPU_MATMUL_N_MAX,
        config.matmul_target_s,
    )
    seconds = timings(run, config.matmul_repeats)
    return _MatmulRun(library, n, min(seconds), statistics.median(seconds))


def _cpu_matmul(dtype: str, threads: int, config: BenchConfig, peak: Figure | None, say: Progress) -> Ceiling:
    runs: list[_MatmulRun] = []
    with _torch_threads(threads):
        if dtype == "fp32":
            runs.append(_run_matmul(_numpy_blas_name(), _numpy_matmul, dtype, config))
        # Quick mode keeps one library for fp32 (numpy's BLAS); full mode also tries torch.
        if import_torch() is not None and not (dtype == "fp32" and config.quick):
            runs.append(_run_matmul(f"torch {import_torch().__version__}", _torch_matmul, dtype, config))
    best = max(runs, key=lambda run: run.flops)
    tried = "; ".join(f"{run.library}: {format_si(run.flops, 'FLOP/s')} at n={run.n}" for run in runs)
    method = (
        f"square {dtype} matmul n x n (2n^3 FLOP per call), size grown until one call takes "
        f"~{config.matmul_target_s:g} s, best of {config.matmul_repeats} timed calls after a warm-up, "
        f"{threads} threads; best library: {best.library} ({tried})"
    )
    details = {
        "library": best.library,
        "n": best.n,
        "best_seconds": best.best_s,
        "median_value": matmul_flop(best.n) / best.median_s,
        "repeats": config.matmul_repeats,
        "threads": threads,
        "candidates": {run.library: {"n": run.n, "value": run.flops} for run in runs},
    }
    say(f"cpu: matmul {dtype} {format_si(best.flops, 'FLOP/s')}")
    return Ceiling("cpu", "matmul_flops", dtype, best.flops, flops_unit(dtype), method, spec=peak, details=details)


def _numpy_blas_name() -> str:
    """'numpy 2.4.6 (scipy-openblas 0.3.31)' from numpy's build config, as far as it says."""
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"numpy {np.__version__} ({blas.get('name')} {blas.get('version')})"
    except Exception:  # older numpy prints instead of returning a dict
        return f"numpy {np.__version__}"


def triad_array_bytes(cpu: CpuInfo) -> tuple[int, str]:
    """Bytes per triad array: 4x the whole last-level cache (all instances), capped by free memory."""
    llc_bytes = cpu.last_level_cache_bytes
    if llc_bytes:
        wanted = max(4 * llc_bytes, _TRIAD_MIN_ARRAY_BYTES)
        why = f"4 x last-level cache ({llc_bytes // MIB} MiB over all instances)"
    else:
        wanted = _TRIAD_UNKNOWN_LLC_ARRAY_BYTES
        why = "last-level cache size unknown: 256 MiB per array"
    if cpu.memory_available_bytes and _TRIAD_ARRAYS * wanted > cpu.memory_available_bytes // 4:
        wanted = cpu.memory_available_bytes // (4 * _TRIAD_ARRAYS)
        why += "; capped to a quarter of available memory, may not exceed the cache by 4x"
    return wanted, why


def _cpu_triad(cpu: CpuInfo, threads: int, config: BenchConfig) -> Ceiling:
    import numpy as np

    array_bytes, size_why = triad_array_bytes(cpu)
    elements = array_bytes // _FLOAT64_BYTES
    a = np.zeros(elements)  # zeros/full touch every page now, so faults stay out of the timing
    b = np.full(elements, 1.0)
    c = np.full(elements, 2.0)
    scalar = 3.0
    moved_bytes = _TRIAD_ARRAYS * _FLOAT64_BYTES * elements
    candidates = {"numpy out= (np.multiply + np.add, 1 thread)": _numpy_triad(a, b, c, scalar)}
    torch = import_torch()
    if torch is not None:
        candidates[f"torch.add(b, c, alpha=s, out=a), {threads} threads"] = _torch_triad(torch, a, b, c, scalar)
    rates, medians = {}, {}
    with _torch_threads(threads):
        for name, run in candidates.items():
            run()
            seconds = timings(run, config.triad_repeats)
            rates[name] = moved_bytes / min(seconds)
            medians[name] = moved_bytes / statistics.median(seconds)
    best_name = max(rates, key=rates.get)
    _check_triad(a, b, c, scalar)
    method = (
        f"STREAM triad a = b + s*c on float64 arrays of {elements:,} elements ({array_bytes / MIB:.0f} MiB each; "
        f"{size_why}); counts 3 x 8 bytes per element (write-allocate not counted, as STREAM); best of "
        f"{config.triad_repeats} after a warm-up; best variant: {best_name} ("
        + "; ".join(f"{name}: {format_si(rate, 'B/s')}" for name, rate in rates.items())
        + ")"
    )
    details = {
        "variant": best_name,
        "median_value": medians[best_name],
        "elements": elements,
        "array_bytes": array_bytes,
        "last_level_cache_bytes": cpu.last_level_cache_bytes,
        "repeats": config.triad_repeats,
        "candidates": rates,
    }
    return Ceiling("cpu", "mem_bandwidth", None, rates[best_name], "bytes/s", method, spec=None, details=details)


def _numpy_triad(a: Any, b: Any, c: Any, scalar: float) -> Callable[[], None]:
    import numpy as np

    def run() -> None:
        # Two passes through out= arrays: no temporaries, but numpy cannot fuse them.
        np.multiply(c, scalar, out=a)
        np.add(a, b, out=a)

    return run


def _torch_triad(torch: Any, a: Any, b: Any, c: Any, scalar: float) -> Callable[[], None]:
    # from_numpy shares memory: same arrays, one fused multithreaded pass.
    ta, tb, tc = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
    return lambda: torch.add(tb, tc, alpha=scalar, out=ta)


def _check_triad(a: Any, b: Any, c: Any, scalar: float) -> None:
    """A bandwidth figure from a kernel that computed garbage would be meaningless."""
    expected = b[:1024] + scalar * c[:1024]
    if not (abs(a[:1024] - expected) < 1e-12).all():
        raise BenchmarkError("triad produced wrong values; the bandwidth figure would be meaningless")
