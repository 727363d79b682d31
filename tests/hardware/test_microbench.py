"""Microbenchmarks: quick CPU runs give sane, finite ceilings; GPU paths run where there is a GPU."""

import math

import pytest

from hwfit.hardware import BenchmarkError, UnknownDevice, cpu_peak_flops, discover_cpu, measure_ceilings
from hwfit.hardware.microbench import triad_array_bytes


@pytest.fixture(scope="module")
def cpu_ceilings():
    return measure_ceilings("cpu", quick=True)


def test_quick_cpu_ceilings_are_positive_and_finite(cpu_ceilings):
    assert cpu_ceilings
    for ceiling in cpu_ceilings:
        assert ceiling.how == "measured"
        assert math.isfinite(ceiling.value) and ceiling.value > 0, ceiling
        assert "best of" in ceiling.method


def test_cpu_matmul_dtypes_follow_the_isa(cpu_ceilings):
    cpu = discover_cpu()
    dtypes = {c.dtype for c in cpu_ceilings if c.metric == "matmul_flops"}
    assert "fp32" in dtypes
    try:
        import torch  # noqa: F401 - imported only to check that it is installed and imports

        has_torch = True
    except ImportError:
        has_torch = False
    assert ("bf16" in dtypes) == (has_torch and (cpu.has("avx512_bf16") or cpu.has("amx_bf16")))


def test_cpu_matmul_is_compared_with_the_computed_peak(cpu_ceilings):
    peaks = cpu_peak_flops(discover_cpu())
    fp32 = next(c for c in cpu_ceilings if c.metric == "matmul_flops" and c.dtype == "fp32")
    if "fp32" not in peaks:
        pytest.skip("no computed fp32 peak on this machine")
    assert fp32.spec == peaks["fp32"]
    # Wide bounds (boost clocks, noisy neighbours) that still catch a FLOP-count error of n vs n^3.
    assert 0.05 < fp32.ratio < 2.5


def test_triad_arrays_exceed_four_times_the_last_level_cache(cpu_ceilings):
    cpu = discover_cpu()
    triad = next(c for c in cpu_ceilings if c.metric == "mem_bandwidth")
    assert triad.unit == "bytes/s" and triad.spec is None  # CPUs have no spec bandwidth
    array_bytes = triad.details["array_bytes"]
    assert array_bytes == triad_array_bytes(cpu)[0]
    if cpu.last_level_cache_bytes:
        assert array_bytes >= 4 * cpu.last_level_cache_bytes
    assert triad.details["elements"] * 8 == array_bytes
    # DRAM bandwidth of any machine that runs this is between 0.5 GB/s and 2 TB/s.
    assert 0.5e9 < triad.value < 2e12


def test_unknown_device_is_rejected():
    with pytest.raises(UnknownDevice, match="gpu0"):
        measure_ceilings("gpu0", quick=True)


def test_cuda_without_cuda_says_why():
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available; the no-CUDA path cannot be exercised")
    with pytest.raises(BenchmarkError, match="cuda:0"):
        measure_ceilings("cuda:0", quick=True)


@pytest.mark.gpu
def test_quick_cuda_ceilings(torch_cuda):
    ceilings = measure_ceilings("cuda:0", quick=True)
    metrics = {(c.metric, c.dtype) for c in ceilings}
    assert ("matmul_flops", "fp32") in metrics and ("matmul_flops", "fp16") in metrics
    assert ("mem_bandwidth", None) in metrics
    for kind in ("h2d_bandwidth_pageable", "h2d_bandwidth_pinned", "d2h_bandwidth_pageable", "d2h_bandwidth_pinned"):
        assert (kind, None) in metrics
    for ceiling in ceilings:
        assert math.isfinite(ceiling.value) and ceiling.value > 0
        if ceiling.ratio is not None:
            assert ceiling.ratio < 1.15, ceiling  # nothing beats its datasheet by more than clock noise
