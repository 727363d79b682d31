"""fp32 and TF32 on NVIDIA GPUs: TF32 is the tensor-core math mode that Ampere (compute capability
8.0) and newer GPUs use for fp32 matmuls and convolutions unless told not to. cuDNN, ONNX Runtime's
CUDA provider and TensorRT all allow it by default, which would make an "fp32" figure a TF32 one
measured against the much lower fp32 peak. hwfit's `fp32` on a GPU is IEEE fp32 (TF32 off);
`tf32` is its own precision, measured against the catalog's tf32 peak."""

from __future__ import annotations

import os
from typing import Any

from hwfit.core import BackendError, Device

# NVIDIA's process-wide switch: cuBLAS, cuDNN and TensorRT read it; "0" turns TF32 off for all.
TF32_OVERRIDE_ENV = "NVIDIA_TF32_OVERRIDE"
TF32_MIN_CAPABILITY = (8, 0)


def capability_of(device: str) -> tuple[int, int] | None:
    """The compute capability NVML reports for a `cuda:N` device, or None where it is unknown."""
    from hwfit.hardware import discover_gpus, gpu_for_cuda_index

    parsed = Device.parse(device)
    if not parsed.is_gpu:
        return None
    gpu = gpu_for_cuda_index(parsed.index, discover_gpus()[0])
    if gpu is None or not gpu.compute_capability:
        return None
    major, _, minor = gpu.compute_capability.partition(".")
    return int(major), int(minor or 0)


def tf32_reason(device: str, capability: tuple[int, int] | None = None) -> str | None:
    """Why a `tf32` variant cannot run on `device`, or None. `capability` defaults to NVML's answer."""
    if not device.startswith("cuda"):
        return (
            f"tf32 on {device}: TF32 is a tensor-core math mode of NVIDIA GPUs (compute capability 8.0 and "
            "newer); use fp32 here"
        )
    if os.environ.get(TF32_OVERRIDE_ENV) == "0":
        return f"tf32 on {device}: {TF32_OVERRIDE_ENV}=0 is set in this process, which turns TF32 off everywhere"
    capability = capability if capability is not None else capability_of(device)
    if capability is not None and capability < TF32_MIN_CAPABILITY:
        return (
            f"tf32 on {device}: compute capability {capability[0]}.{capability[1]} has no TF32 tensor cores "
            "(Ampere, 8.0, and newer do)"
        )
    return None


def set_torch_fp32_math(torch: Any, precision: str) -> str:
    """Set torch's fp32 math for this process to IEEE fp32 (`fp32`) or TF32 (`tf32`); say what was set.

    Both switches matter: cuBLAS matmuls (`torch.backends.cuda.matmul.allow_tf32`, off by default)
    and cuDNN convolutions (`torch.backends.cudnn.allow_tf32`, ON by default). The legacy flags are
    used because torch >= 2.9 raises when its newer `fp32_precision` API and readers of the legacy
    flags (Inductor reads both) disagree; setting the legacy flags keeps both views consistent.
    """
    enabled = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    if torch.backends.cuda.matmul.allow_tf32 != enabled or torch.backends.cudnn.allow_tf32 != enabled:
        raise BackendError(f"torch did not keep allow_tf32={enabled} for cuBLAS and cuDNN")
    if enabled:
        return "fp32 math: TF32 tensor cores for matmuls (cuBLAS) and convolutions (cuDNN)"
    return "fp32 math: IEEE fp32, TF32 off for matmuls (cuBLAS) and convolutions (cuDNN)"


def ort_cuda_options(device_id: int, precision: str) -> dict[str, Any]:
    """CUDAExecutionProvider options: `use_tf32` on only for the `tf32` precision (ORT's default is on)."""
    return {"device_id": device_id, "use_tf32": 1 if precision == "tf32" else 0}
