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


# --- what a GPU provider needs, read from its library ----------------------------------------------


def test_elf_needed_reads_the_libraries_a_real_shared_object_links():
    from pathlib import Path

    import onnxruntime as ort

    from hwfit.hardware.runtimes import elf_needed

    state = next((Path(ort.__file__).parent / "capi").glob("onnxruntime_pybind11_state*.so"))
    needed = elf_needed(state)
    assert "libc.so.6" in needed and all(name.startswith(("lib", "ld-")) for name in needed)
    assert elf_needed(Path(ort.__file__)) == []  # not an ELF file


def test_missing_libraries_names_the_nvidia_ones_that_do_not_load():
    import ctypes

    from hwfit.hardware.runtimes import missing_libraries

    try:
        ctypes.CDLL("libnvinfer.so.10")
        pytest.skip("TensorRT 10 is installed here: nothing to report missing")
    except OSError:
        pass
    assert missing_libraries(["libc.so.6", "libstdc++.so.6", "libnvinfer.so.10"]) == ["libnvinfer.so.10"]


def test_install_command_follows_the_builds_cuda_and_tensorrt_majors():
    from hwfit.hardware.runtimes import install_command

    assert install_command(["libnvinfer.so.10", "libnvonnxparser.so.10"], "13.0", "1.31.1") == (
        "pip install 'tensorrt-cu13-libs==10.*'"
    )
    assert install_command(["libcudnn.so.9", "libnvinfer.so.10"], "12.8", "1.22.0") == (
        "pip install 'onnxruntime-gpu[cuda,cudnn]==1.22.0' && pip install 'tensorrt-cu12-libs==10.*'"
    )


def test_gpu_libraries_are_preloaded_quietly_before_a_gpu_provider_is_tried(capsys):
    import onnxruntime as ort

    from hwfit.hardware.runtimes import preload_gpu_libraries

    assert preload_gpu_libraries(ort, ["CPUExecutionProvider"]) == []
    notes = preload_gpu_libraries(ort, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    if hasattr(ort, "preload_dlls"):
        assert notes and notes[0].startswith("onnxruntime.preload_dlls() called")
    assert capsys.readouterr().out == ""  # its warnings must not reach `hwfit devices --json`'s stdout


def test_two_onnxruntime_distributions_are_reported_with_the_fix(monkeypatch):
    from hwfit.hardware import runtimes

    assert runtimes.installed_ort_distributions() == ["onnxruntime"]  # what the test extra installs
    monkeypatch.setattr(runtimes, "installed_ort_distributions", lambda: ["onnxruntime", "onnxruntime-gpu"])
    (note,) = runtimes._ort_distribution_notes()
    assert "onnxruntime and onnxruntime-gpu" in note and runtimes.ORT_GPU_INSTALL in note
