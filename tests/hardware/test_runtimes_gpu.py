"""Runtimes on a machine with an NVIDIA GPU: torch CUDA and ONNX Runtime's GPU providers attach.
Apart from test_runtimes.py, which needs the CPU extras (OpenVINO) a GPU machine may not carry."""

import pytest

from hwfit.hardware import ort_providers, torch_cuda_available, torch_report

pytestmark = pytest.mark.gpu


def test_torch_cuda_entries_are_usable_and_run(torch_cuda):
    torch = torch_cuda
    available, reason = torch_cuda_available()
    assert available and reason is None
    cuda0 = next(device for device in torch_report().devices if device.name == "cuda:0")
    assert cuda0.usable and cuda0.full_name == torch.cuda.get_device_name(0)
    assert {"fp32", "fp16"} <= set(cuda0.precisions)
    assert (torch.arange(4.0, device="cuda:0") * 2).cpu().tolist() == [0.0, 2.0, 4.0, 6.0]


@pytest.mark.parametrize("provider", ["CUDAExecutionProvider", "TensorrtExecutionProvider"])
def test_ort_gpu_provider_attaches_or_names_what_is_missing(provider):
    report = ort_providers()
    if not report.installed:
        pytest.skip(report.reason)
    entry = next((device for device in report.devices if device.name == provider), None)
    assert entry is not None, f"{provider}: neither listed nor explained with a GPU present"
    if not entry.usable:
        # The exact answer a user gets from `hwfit devices`; the test skips with it.
        assert entry.reason
        pytest.skip(f"{provider}: {entry.reason}" + (f" (install: {entry.install})" if entry.install else ""))
    assert entry.reason == "attached to a test session"
