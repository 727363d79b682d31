"""Microbenchmarks that measure this machine's ceilings: matmul FLOP/s per dtype and memory bandwidth.

CPU: square matmuls through numpy's BLAS and torch (best of the two), and a STREAM-style triad
`a = b + s*c` over arrays at least 4x the last-level cache. GPU: torch.cuda matmuls per dtype,
device-memory copy, and host<->device copies from pageable and pinned memory, timed with CUDA
events. Every result is a `Ceiling` saying how it was measured and how it compares to the
catalog (GPUs) or the computed peak (CPUs).
"""

import math
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from hwfit.hardware._errors import BenchmarkError, UnknownDevice
from hwfit.hardware.catalog import cpu_peak_flops, flops_unit, spec_for_gpu
from hwfit.hardware.cpu import CpuInfo, discover_cpu
from hwfit.hardware.figures import Figure, format_si
from hwfit.hardware.nvidia import GpuInfo, discover_gpus, gpu_for_cuda_index

Progress = Callable[[str], None]

_MIB = 1024**2
# STREAM convention: a triad moves 3 arrays of float64 (read b, read c, write a); the extra read
# of `a` that write-allocate caches do is not counted, so figures compare with published STREAM.
_TRIAD_ARRAYS = 3
_FLOAT64_BYTES = 8
_TRIAD_MIN_ARRAY_BYTES = 64 * _MIB  # floor when the L3 is small or unknown
_TRIAD_UNKNOWN_LLC_ARRAY_BYTES = 256 * _MIB
# PCIe per-lane payload rate per direction, GB/s: transfer rate x line-code efficiency / 8 bits.
_PCIE_LANE_GB_PER_S = {1: 0.25, 2: 0.5, 3: 8 * 128 / 130 / 8, 4: 16 * 128 / 130 / 8, 5: 32 * 128 / 130 / 8, 6: 64 * 242 / 256 / 8}


@dataclass(frozen=True)
class BenchConfig:
    """How hard to push: `quick` keeps a whole CPU run within a few seconds for tests."""

    matmul_target_s: float  # wall time one timed matmul should take
    matmul_repeats: int
    matmul_probe_n: int  # size of the calibration run that picks the real size
    triad_repeats: int
    gpu_copy_bytes: int
    host_copy_bytes: int
    gpu_repeats: int

    @classmethod
    def for_mode(cls, quick: bool) -> "BenchConfig":
        if quick:
            return cls(0.02, 2, 256, 3, 256 * _MIB, 64 * _MIB, 5)
        return cls(0.25, 7, 1024, 20, 1024 * _MIB, 256 * _MIB, 20)


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


def measure_ceilings(device: str = "cpu", quick: bool = False, progress: Progress | None = None) -> list[Ceiling]:
    """Measure `device` ("cpu" or "cuda:N"). Raises UnknownDevice / BenchmarkError when it cannot run."""
    config = BenchConfig.for_mode(quick)
    say = progress or (lambda message: None)
    if device == "cpu":
        return _measure_cpu(discover_cpu(), config, say)
    if device.startswith("cuda:") and device[5:].isdigit():
        return _measure_cuda(int(device[5:]), config, say)
    raise UnknownDevice(f"unknown device {device!r}: expected 'cpu' or 'cuda:N' (see `hwfit devices`)")


# --- timing ------------------------------------------------------------------------------------


def _timings(run: Callable[[], None], repeats: int) -> list[float]:
    """`repeats` wall-clock timings of `run`, in seconds."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return seconds


def _best_seconds(run: Callable[[], None], repeats: int) -> float:
    """Fastest of `repeats` timings: on a shared machine the minimum is the least disturbed run."""
    return min(_timings(run, repeats))


def _size_for(rate_per_s: float, target_s: float, work: Callable[[int], float], n_min: int, n_max: int) -> int:
    """Largest n (a multiple of 128) whose work(n) takes about target_s at rate_per_s."""
    n = n_min
    while n + 128 <= n_max and work(n + 128) / rate_per_s <= target_s:
        n += 128
    return n


def _matmul_flop(n: int) -> float:
    return 2.0 * n**3


# --- CPU ---------------------------------------------------------------------------------------


def _measure_cpu(cpu: CpuInfo, config: BenchConfig, say: Progress) -> list[Ceiling]:
    peaks = cpu_peak_flops(cpu)
    threads = cpu.usable_threads or 1
    ceilings = []
    for dtype in _cpu_matmul_dtypes(cpu):
        say(f"cpu: matmul {dtype}")
        ceilings.append(_cpu_matmul(dtype, cpu, threads, config, peaks.get(dtype), say))
    say("cpu: memory bandwidth (triad)")
    ceilings.append(_cpu_triad(cpu, threads, config))
    return ceilings


def _cpu_matmul_dtypes(cpu: CpuInfo) -> list[str]:
    """fp32 always; bf16/fp16 only with native instructions and torch (numpy has no bf16 matmul)."""
    dtypes = ["fp32"]
    if _torch() is None:
        return dtypes
    if cpu.has("avx512_bf16") or cpu.has("amx_bf16"):
        dtypes.append("bf16")
    if cpu.has("avx512_fp16") or cpu.has("amx_fp16"):
        dtypes.append("fp16")
    return dtypes


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """Run torch on every usable thread, then put its setting back."""
    torch = _torch()
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
    torch = _torch()
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
        return _matmul_flop(self.n) / self.best_s


def _run_matmul(library: str, make: Callable[[int, str], Callable[[], None]], dtype: str, config: BenchConfig) -> _MatmulRun:
    """Calibrate on a small size, then time the size that takes ~target seconds; best of N."""
    probe = make(config.matmul_probe_n, dtype)
    probe()  # warm-up: thread pools start, pages fault in
    probe_rate = _matmul_flop(config.matmul_probe_n) / _best_seconds(probe, 2)
    n = _size_for(probe_rate, config.matmul_target_s, _matmul_flop, 256, 8192)
    run = make(n, dtype)
    run()
    seconds = _timings(run, config.matmul_repeats)
    return _MatmulRun(library, n, min(seconds), statistics.median(seconds))


def _cpu_matmul(dtype: str, cpu: CpuInfo, threads: int, config: BenchConfig, peak: Figure | None, say: Progress) -> Ceiling:
    runs: list[_MatmulRun] = []
    with _torch_threads(threads):
        if dtype == "fp32":
            runs.append(_run_matmul(_numpy_blas_name(), _numpy_matmul, dtype, config))
        if _torch() is not None:
            runs.append(_run_matmul(f"torch {_torch().__version__}", _torch_matmul, dtype, config))
    best = max(runs, key=lambda run: run.flops)
    tried = "; ".join(f"{run.library}: {format_si(run.flops, 'FLOP/s')} at n={run.n}" for run in runs)
    method = (
        f"square {dtype} matmul n x n (2n^3 FLOP per call), size picked so one call takes "
        f"~{config.matmul_target_s:g} s, best of {config.matmul_repeats} timed calls after a warm-up, "
        f"{threads} threads; best library: {best.library} ({tried})"
    )
    details = {"library": best.library, "n": best.n, "best_seconds": best.best_s,
               "median_value": _matmul_flop(best.n) / best.median_s, "repeats": config.matmul_repeats,
               "threads": threads, "candidates": {run.library: {"n": run.n, "value": run.flops} for run in runs}}
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
        why = f"4 x last-level cache ({llc_bytes // _MIB} MiB over all instances)"
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
    torch = _torch()
    if torch is not None:
        candidates[f"torch.add(b, c, alpha=s, out=a), {threads} threads"] = _torch_triad(torch, a, b, c, scalar)
    rates, medians = {}, {}
    with _torch_threads(threads):
        for name, run in candidates.items():
            run()
            seconds = _timings(run, config.triad_repeats)
            rates[name] = moved_bytes / min(seconds)
            medians[name] = moved_bytes / statistics.median(seconds)
    best_name = max(rates, key=rates.get)
    _check_triad(a, b, c, scalar)
    method = (
        f"STREAM triad a = b + s*c on float64 arrays of {elements:,} elements ({array_bytes / _MIB:.0f} MiB each; "
        f"{size_why}); counts 3 x 8 bytes per element (write-allocate not counted, as STREAM); best of "
        f"{config.triad_repeats} after a warm-up; best variant: {best_name} ("
        + "; ".join(f"{name}: {format_si(rate, 'B/s')}" for name, rate in rates.items())
        + ")"
    )
    details = {"variant": best_name, "median_value": medians[best_name], "elements": elements, "array_bytes": array_bytes,
               "last_level_cache_bytes": cpu.last_level_cache_bytes, "repeats": config.triad_repeats,
               "candidates": rates}
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


# --- CUDA --------------------------------------------------------------------------------------


def _measure_cuda(index: int, config: BenchConfig, say: Progress) -> list[Ceiling]:
    torch = _torch()
    if torch is None:
        raise BenchmarkError(f"cannot benchmark cuda:{index}: torch not installed (pip install 'hwfit[torch]')")
    if not torch.cuda.is_available():
        raise BenchmarkError(f"cannot benchmark cuda:{index}: torch.cuda.is_available() is False here")
    if index >= torch.cuda.device_count():
        raise UnknownDevice(f"unknown device cuda:{index}: torch sees {torch.cuda.device_count()} CUDA device(s)")
    device = torch.device(f"cuda:{index}")
    name = torch.cuda.get_device_name(index)
    spec = spec_for_gpu(name)
    gpus, _ = discover_gpus()
    gpu = gpu_for_cuda_index(index, gpus)
    ceilings = []
    with torch.cuda.device(device):
        for dtype in _cuda_matmul_dtypes(torch, index):
            say(f"cuda:{index}: matmul {dtype}")
            peak = spec.peak_flops.get(dtype) if spec else None
            ceiling = _cuda_matmul(torch, device, dtype, config, peak, say)
            if ceiling is not None:
                ceilings.append(ceiling)
        say(f"cuda:{index}: device memory bandwidth (copy)")
        ceilings.append(_cuda_device_copy(torch, device, config, spec.memory_bandwidth_bytes_per_s if spec else None))
        pcie = _pcie_spec(gpu)
        for direction in ("h2d", "d2h"):
            for pinned in (False, True):
                say(f"cuda:{index}: {direction} copy, {'pinned' if pinned else 'pageable'}")
                ceilings.append(_cuda_host_copy(torch, device, direction, pinned, config, pcie))
    return ceilings


def _cuda_matmul_dtypes(torch: Any, index: int) -> list[str]:
    major, minor = torch.cuda.get_device_capability(index)
    dtypes = ["fp32", "fp16"]
    if major >= 8:
        dtypes += ["tf32", "bf16"]
    if (major, minor) >= (8, 9) and hasattr(torch, "float8_e4m3fn"):
        dtypes.append("fp8")
    if (major, minor) >= (7, 5):
        dtypes.append("int8")
    return dtypes


def _cuda_time_best(torch: Any, run: Callable[[], None], repeats: int) -> float:
    """Best of `repeats` CUDA-event timings, in seconds; the device is synchronised after each."""
    best_ms = math.inf
    for _ in range(repeats):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        best_ms = min(best_ms, start.elapsed_time(end))
    return best_ms / 1000


def _cuda_matmul_runner(torch: Any, device: Any, dtype: str, n: int) -> Callable[[], None]:
    """One n x n x n product in `dtype` on tensor cores where the dtype uses them."""
    generator = torch.Generator(device=device).manual_seed(0)
    if dtype == "fp8":
        a = torch.randn(n, n, device=device, generator=generator).to(torch.float8_e4m3fn)
        # _scaled_mm wants the second operand column-major: the transpose of a row-major tensor.
        b = torch.randn(n, n, device=device, generator=generator).to(torch.float8_e4m3fn).t()
        one = torch.ones((), device=device)
        return lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    if dtype == "int8":
        a = torch.randint(-8, 8, (n, n), device=device, dtype=torch.int8, generator=generator)
        b = torch.randint(-8, 8, (n, n), device=device, dtype=torch.int8, generator=generator)
        return lambda: torch._int_mm(a, b)
    torch_dtype = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    a = torch.randn(n, n, device=device, generator=generator, dtype=torch_dtype)
    b = torch.randn(n, n, device=device, generator=generator, dtype=torch_dtype)
    out = torch.empty(n, n, device=device, dtype=torch_dtype)
    return lambda: torch.matmul(a, b, out=out)


@contextmanager
def _tf32(torch: Any, enabled: bool) -> Iterator[None]:
    """fp32 and tf32 differ only in this switch; restore the caller's setting afterwards."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def _cuda_matmul(torch: Any, device: Any, dtype: str, config: BenchConfig, peak: Figure | None, say: Progress) -> Ceiling | None:
    probe_n = 2048 if config.matmul_repeats > 2 else 1024
    target_s = 0.05 if config.matmul_repeats > 2 else 0.01
    with _tf32(torch, dtype == "tf32"):
        try:
            probe = _cuda_matmul_runner(torch, device, dtype, probe_n)
            probe()
            rate = _matmul_flop(probe_n) / _cuda_time_best(torch, probe, 3)
            n = _size_for(rate, target_s, _matmul_flop, 1024, 16384)
            run = _cuda_matmul_runner(torch, device, dtype, n)
            run()
            best_s = _cuda_time_best(torch, run, config.gpu_repeats)
        except (RuntimeError, TypeError) as error:  # an op this build/arch lacks (e.g. _int_mm shape rules)
            say(f"{device}: matmul {dtype} skipped: {str(error).splitlines()[0][:160]}")
            return None
    value = _matmul_flop(n) / best_s
    library = {"fp8": "torch._scaled_mm (e4m3, bf16 out)", "int8": "torch._int_mm"}.get(dtype, "torch.matmul")
    method = (
        f"{library} {dtype}, square n={n} (2n^3 per call), size picked so one call takes ~{target_s:g} s, "
        f"best of {config.gpu_repeats} CUDA-event timings after a warm-up"
        + ("; torch.backends.cuda.matmul.allow_tf32=True" if dtype == "tf32" else "")
    )
    details = {"n": n, "best_seconds": best_s, "repeats": config.gpu_repeats, "library": library}
    return Ceiling(str(device), "matmul_flops", dtype, value, flops_unit(dtype), method, spec=peak, details=details)


def _cuda_device_copy(torch: Any, device: Any, config: BenchConfig, spec: Figure | None) -> Ceiling:
    elements = config.gpu_copy_bytes // 4
    src = torch.ones(elements, device=device, dtype=torch.float32)
    dst = torch.empty_like(src)
    run = lambda: dst.copy_(src)  # noqa: E731
    run()
    best_s = _cuda_time_best(torch, run, config.gpu_repeats)
    moved = 2 * config.gpu_copy_bytes  # read + write
    method = (
        f"device-to-device tensor copy of {config.gpu_copy_bytes // _MIB} MiB, counted as 2 x size "
        f"(read + write), best of {config.gpu_repeats} CUDA-event timings"
    )
    details = {"bytes": config.gpu_copy_bytes, "best_seconds": best_s}
    return Ceiling(str(device), "mem_bandwidth", None, moved / best_s, "bytes/s", method, spec=spec, details=details)


def _cuda_host_copy(torch: Any, device: Any, direction: str, pinned: bool, config: BenchConfig, spec: Figure | None) -> Ceiling:
    elements = config.host_copy_bytes // 4
    host = torch.ones(elements, dtype=torch.float32)
    if pinned:
        host = host.pin_memory()
    gpu = torch.empty(elements, device=device, dtype=torch.float32)
    if direction == "h2d":
        run = lambda: gpu.copy_(host, non_blocking=pinned)  # noqa: E731
    else:
        run = lambda: host.copy_(gpu, non_blocking=pinned)  # noqa: E731
    run()
    torch.cuda.synchronize(device)
    best_s = _cuda_time_best(torch, run, config.gpu_repeats)
    kind = "pinned" if pinned else "pageable"
    method = (
        f"{'host to device' if direction == 'h2d' else 'device to host'} copy of {config.host_copy_bytes // _MIB} MiB "
        f"from {kind} host memory (tensor.copy_{', non_blocking' if pinned else ''}), best of "
        f"{config.gpu_repeats} CUDA-event timings"
    )
    details = {"bytes": config.host_copy_bytes, "best_seconds": best_s, "pinned": pinned}
    metric = f"{direction}_bandwidth_{kind}"
    return Ceiling(str(device), metric, None, config.host_copy_bytes / best_s, "bytes/s", method, spec=spec, details=details)


def _pcie_spec(gpu: GpuInfo | None) -> Figure | None:
    """One direction of the PCIe link: lanes x per-lane payload rate of the generation."""
    if gpu is None or not gpu.pcie_max_gen or not gpu.pcie_max_width:
        return None
    lane = _PCIE_LANE_GB_PER_S.get(gpu.pcie_max_gen)
    if lane is None:
        return None
    formula = (
        f"computed: PCIe gen{gpu.pcie_max_gen} x{gpu.pcie_max_width} = {gpu.pcie_max_width} lanes x "
        f"{lane:.3f} GB/s per lane per direction (transfer rate x line code / 8), from NVML max link"
    )
    return Figure(gpu.pcie_max_width * lane * 1e9, "bytes/s", "computed", formula)
