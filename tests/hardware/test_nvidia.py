"""NVIDIA discovery through NVML: the real library where there is one, its absence reported where not."""

import pytest

from hwfit.hardware import discover_gpus, spec_for_gpu
from hwfit.hardware.nvidia import GpuInfo, gpu_for_cuda_index


def _nvml_sees_gpus() -> bool:
    gpus, _ = discover_gpus()
    return bool(gpus)


def test_no_nvml_gives_empty_list_and_reason():
    gpus, reason = discover_gpus()
    if gpus:
        pytest.skip("this machine has NVIDIA GPUs; the absent-NVML path cannot be exercised")
    assert gpus == []
    assert reason and ("NVML" in reason or "NVIDIA" in reason or "nvidia" in reason)


@pytest.mark.gpu
@pytest.mark.skipif(not _nvml_sees_gpus(), reason="no NVIDIA GPU visible to NVML")
def test_gpus_are_described():
    gpus, _ = discover_gpus()
    for gpu in gpus:
        assert gpu.name and gpu.uuid and gpu.uuid.startswith(("GPU-", "MIG-"))
        assert gpu.memory_total_bytes > 1024**3
        assert gpu.compute_capability and "." in gpu.compute_capability
        assert gpu.sm_count is None or gpu.sm_count > 0
        assert gpu.sm_count_source
        assert gpu.power_limit_w is None or 10 < gpu.power_limit_w < 2000
        assert gpu.driver_version
        if spec_for_gpu(gpu.name) is not None and gpu.sm_count is not None:
            assert gpu.sm_count >= 40  # every catalogued datacenter part has at least 40 SMs


def _gpu(index: int, uuid: str) -> GpuInfo:
    return GpuInfo(
        index,
        f"GPU {index}",
        uuid,
        None,
        None,
        None,
        "unknown",
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    )


def test_cuda_visible_devices_maps_to_nvml(monkeypatch):
    gpus = [_gpu(0, "GPU-aaaa-0000"), _gpu(1, "GPU-bbbb-1111"), _gpu(2, "GPU-cccc-2222")]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu_for_cuda_index(1, gpus).index == 1
    assert gpu_for_cuda_index(3, gpus) is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    assert gpu_for_cuda_index(0, gpus).index == 2
    assert gpu_for_cuda_index(1, gpus).index == 0
    assert gpu_for_cuda_index(2, gpus) is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-bbbb")
    assert gpu_for_cuda_index(0, gpus).index == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert gpu_for_cuda_index(0, gpus) is None
