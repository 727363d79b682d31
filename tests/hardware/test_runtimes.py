"""Runtimes: ONNX Runtime providers proven by a real session, OpenVINO devices, torch CUDA."""

import numpy as np
import openvino  # noqa: F401 - the test extra installs it: a broken install fails here, not skips
import pytest
import torch

from hwfit.hardware import (
    clear_runtime_cache,
    discover_gpus,
    openvino_devices,
    ort_providers,
    torch_cuda_available,
    torch_report,
)
from hwfit.hardware.runtimes import _tiny_onnx_model


def test_cpu_provider_is_usable_and_others_say_why():
    report = ort_providers()
    assert report.installed and report.version
    names = [device.name for device in report.devices]
    assert "CPUExecutionProvider" in names
    assert "CPUExecutionProvider" in report.usable_devices()
    for device in report.devices:
        assert device.reason, device.name


def test_probe_model_really_runs():
    import onnxruntime as ort

    session = ort.InferenceSession(_tiny_onnx_model(), providers=["CPUExecutionProvider"])
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    (y,) = session.run(None, {"x": x})
    np.testing.assert_array_equal(y, 2 * x)


def _nvidia_gpu_present() -> bool:
    """A GPU as the driver or torch sees it: either makes the no-GPU expectations wrong."""
    return torch.cuda.is_available() or bool(discover_gpus()[0])


@pytest.mark.skipif(
    _nvidia_gpu_present(), reason="an NVIDIA GPU is present; the no-GPU path is checked where there is none"
)
def test_without_a_gpu_every_cuda_entry_is_unusable_and_names_what_is_missing():
    # torch: one "cuda" entry, not usable, saying whether the build or the GPU/driver is missing
    cuda = [device for device in torch_report().devices if device.name.startswith("cuda")]
    assert len(cuda) == 1 and cuda[0].name == "cuda" and not cuda[0].usable
    if torch.version.cuda is None:
        assert cuda[0].reason == f"this torch build ({torch.__version__}) has no CUDA support"
    else:
        assert cuda[0].reason == f"torch built for CUDA {torch.version.cuda}, but no usable GPU/driver"
    assert torch_cuda_available() == (False, cuda[0].reason)
    # ONNX Runtime: a CUDA/TensorRT provider compiled in must not count as usable without a GPU
    report = ort_providers()
    usable = report.usable_devices()
    assert "CUDAExecutionProvider" not in usable and "TensorrtExecutionProvider" not in usable
    missing = ("compiled in, but the session fell back to CPU", "session creation failed")
    for device in report.devices:
        if device.name in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
            assert device.reason.startswith(missing), device.reason


@pytest.mark.gpu
def test_with_a_gpu_the_cuda_entries_are_usable_and_run():
    available, reason = torch_cuda_available()
    assert available and reason is None
    cuda0 = next(device for device in torch_report().devices if device.name == "cuda:0")
    assert cuda0.usable and cuda0.full_name == torch.cuda.get_device_name(0)
    assert {"fp32", "fp16"} <= set(cuda0.precisions)
    assert (torch.arange(4.0, device="cuda:0") * 2).cpu().tolist() == [0.0, 2.0, 4.0, 6.0]
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():  # onnxruntime-gpu installed
        provider = next(d for d in ort_providers().devices if d.name == "CUDAExecutionProvider")
        assert provider.usable and provider.reason == "attached to a test session"


def test_results_are_cached_until_cleared():
    first = ort_providers()
    assert ort_providers() is first
    clear_runtime_cache()
    assert ort_providers() is not first


def test_openvino_lists_the_cpu_with_precisions():
    report = openvino_devices()
    assert report.installed
    cpu = next(device for device in report.devices if device.name == "CPU")
    assert cpu.usable and cpu.full_name
    assert "FP32" in cpu.precisions


def test_torch_cuda_agrees_with_torch():
    available, reason = torch_cuda_available()
    assert available == torch.cuda.is_available()
    assert (reason is None) == available
