"""Runtimes: ONNX Runtime providers proven by a real session, OpenVINO devices, torch CUDA."""

import numpy as np
import pytest

from hwfit.hardware import clear_runtime_cache, openvino_devices, ort_providers, torch_cuda_available
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


def test_cuda_provider_usable_only_with_a_working_gpu():
    import onnxruntime as ort

    report = ort_providers()
    cuda = [device for device in report.devices if device.name == "CUDAExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert cuda == []  # this build has no CUDA provider at all
        return
    torch_ok, _ = torch_cuda_available()
    assert cuda and (cuda[0].usable or not torch_ok or cuda[0].reason)


def test_results_are_cached_until_cleared():
    first = ort_providers()
    assert ort_providers() is first
    clear_runtime_cache()
    assert ort_providers() is not first


def test_openvino_lists_the_cpu_with_precisions():
    pytest.importorskip("openvino")
    report = openvino_devices()
    assert report.installed
    cpu = next(device for device in report.devices if device.name == "CPU")
    assert cpu.usable and cpu.full_name
    assert "FP32" in cpu.precisions


def test_torch_cuda_agrees_with_torch():
    torch = pytest.importorskip("torch")
    available, reason = torch_cuda_available()
    assert available == torch.cuda.is_available()
    assert (reason is None) == available
