"""CUDA ceilings through torch.cuda: matmul per dtype, device-memory copy, host<->device copies.

Timed with CUDA events and synchronised after each call. Only runs where torch.cuda works.
"""

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hwfit.core import Figure
from hwfit.hardware._benchcore import MIB, BenchConfig, Ceiling, Progress, calibrate, import_torch, matmul_flop
from hwfit.hardware._errors import BenchmarkError, UnknownDevice
from hwfit.hardware.catalog import flops_unit, spec_for_gpu
from hwfit.hardware.nvidia import GpuInfo, discover_gpus, gpu_for_cuda_index

_CUDA_MATMUL_N_MAX = 16384
# PCIe per-lane payload rate per direction, GB/s: transfer rate x line-code efficiency / 8 bits.
_PCIE_LANE_GB_PER_S = {
    1: 0.25,
    2: 0.5,
    3: 8 * 128 / 130 / 8,
    4: 16 * 128 / 130 / 8,
    5: 32 * 128 / 130 / 8,
    6: 64 * 242 / 256 / 8,
}


def measure_cuda(index: int, config: BenchConfig, say: Progress) -> list[Ceiling]:
    torch = import_torch()
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


def _cuda_matmul(
    torch: Any, device: Any, dtype: str, config: BenchConfig, peak: Figure | None, say: Progress
) -> Ceiling | None:
    target_s = config.gpu_matmul_target_s
    with _tf32(torch, dtype == "tf32"):
        try:
            n, run = calibrate(
                lambda size: _cuda_matmul_runner(torch, device, dtype, size),
                lambda candidate: _cuda_time_best(torch, candidate, 3),
                config.gpu_matmul_start_n,
                _CUDA_MATMUL_N_MAX,
                target_s,
            )
            best_s = _cuda_time_best(torch, run, config.gpu_repeats)
        except (RuntimeError, TypeError) as error:  # an op this build/arch lacks (e.g. _int_mm shape rules)
            say(f"{device}: matmul {dtype} skipped: {str(error).splitlines()[0][:160]}")
            return None
    value = matmul_flop(n) / best_s
    library = {"fp8": "torch._scaled_mm (e4m3, bf16 out)", "int8": "torch._int_mm"}.get(dtype, "torch.matmul")
    method = (
        f"{library} {dtype}, square n={n} (2n^3 per call), size grown until one call takes ~{target_s:g} s, "
        f"best of {config.gpu_repeats} CUDA-event timings after a warm-up"
        + ("; torch.backends.cuda.matmul.allow_tf32=True" if dtype == "tf32" else "")
    )
    details = {"n": n, "best_seconds": best_s, "repeats": config.gpu_repeats, "library": library}
    return Ceiling(str(device), "matmul_flops", dtype, value, flops_unit(dtype), method, spec=peak, details=details)


def _cuda_device_copy(torch: Any, device: Any, config: BenchConfig, spec: Figure | None) -> Ceiling:
    elements = config.gpu_copy_bytes // 4
    src = torch.ones(elements, device=device, dtype=torch.float32)
    dst = torch.empty_like(src)
    run = lambda: dst.copy_(src)  # noqa: E731 - the timed call, named for the timer
    run()
    best_s = _cuda_time_best(torch, run, config.gpu_repeats)
    moved = 2 * config.gpu_copy_bytes  # read + write
    method = (
        f"device-to-device tensor copy of {config.gpu_copy_bytes // MIB} MiB, counted as 2 x size "
        f"(read + write), best of {config.gpu_repeats} CUDA-event timings"
    )
    details = {"bytes": config.gpu_copy_bytes, "best_seconds": best_s}
    return Ceiling(str(device), "mem_bandwidth", None, moved / best_s, "bytes/s", method, spec=spec, details=details)


def _cuda_host_copy(
    torch: Any, device: Any, direction: str, pinned: bool, config: BenchConfig, spec: Figure | None
) -> Ceiling:
    elements = config.host_copy_bytes // 4
    host = torch.ones(elements, dtype=torch.float32)
    if pinned:
        host = host.pin_memory()
    gpu = torch.empty(elements, device=device, dtype=torch.float32)
    if direction == "h2d":
        run = lambda: gpu.copy_(host, non_blocking=pinned)  # noqa: E731 - the timed call, named for the timer
    else:
        run = lambda: host.copy_(gpu, non_blocking=pinned)  # noqa: E731 - the timed call, named for the timer
    run()
    torch.cuda.synchronize(device)
    best_s = _cuda_time_best(torch, run, config.gpu_repeats)
    kind = "pinned" if pinned else "pageable"
    method = (
        f"{'host to device' if direction == 'h2d' else 'device to host'} copy of {config.host_copy_bytes // MIB} MiB "
        f"from {kind} host memory (tensor.copy_{', non_blocking' if pinned else ''}), best of "
        f"{config.gpu_repeats} CUDA-event timings"
    )
    details = {"bytes": config.host_copy_bytes, "best_seconds": best_s, "pinned": pinned}
    metric = f"{direction}_bandwidth_{kind}"
    return Ceiling(
        str(device), metric, None, config.host_copy_bytes / best_s, "bytes/s", method, spec=spec, details=details
    )


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
