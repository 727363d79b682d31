"""Shared fixtures: a private cache per test session, and the built-in models loaded once."""

import os
import tempfile

import pytest

# Hermetic: conversions, exports and the CNN's weights are made fresh for the suite, not taken
# from a developer's ~/.cache/hwfit. Set before anything imports hwfit.
os.environ.setdefault("HWFIT_CACHE", tempfile.mkdtemp(prefix="hwfit-test-cache-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def no_gpu_reason() -> str | None:
    """None where the driver (NVML) or torch sees an NVIDIA GPU; else both of their reasons.

    The `gpu` marker means "needs an NVIDIA GPU", not "needs torch.cuda": a GPU test that needs a
    runtime as well (torch CUDA, onnxruntime-gpu, TensorRT, a model's package) skips by itself
    with that runtime's own reason (see `torch_cuda` and `builtin_or_skip`), so a machine that has
    the GPU but not every runtime runs what it can.
    """
    from hwfit.hardware import discover_gpus, torch_cuda_available

    gpus, nvml_reason = discover_gpus()
    if gpus:
        return None
    cuda_ok, torch_reason = torch_cuda_available()
    if cuda_ok:
        return None
    return f"needs an NVIDIA GPU; none here (NVML: {nvml_reason}; torch: {torch_reason})"


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if "gpu" in item.keywords]
    reason = no_gpu_reason() if gpu_items else None
    if reason is None:
        return
    for item in gpu_items:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def torch_cuda():
    """torch, where it can run on a CUDA GPU here; else the test skips with torch's own reason."""
    from hwfit.hardware import torch_cuda_available

    available, reason = torch_cuda_available()
    if not available:
        pytest.skip(f"torch cannot use a CUDA GPU here: {reason}")
    import torch

    return torch


@pytest.fixture(scope="session")
def builtin_or_skip():
    """`builtin_or_skip("minilm")`: the built-in model, or a skip naming what it lacks here (its
    weights package, scikit-learn): for GPU machines that carry only some of the extras."""
    from hwfit.models import load_model
    from hwfit.models.builtins import BUILTINS

    loaded = {}

    def load(name: str):
        if name not in loaded:
            reason = BUILTINS[name].unavailable_reason()
            if reason:
                pytest.skip(f"built-in '{name}' unavailable: {reason}")
            loaded[name] = load_model(name)
        return loaded[name]

    return load


@pytest.fixture(scope="session")
def minilm():
    from hwfit.models import load_model

    return load_model("minilm")


@pytest.fixture(scope="session")
def cnn():
    from hwfit.models import load_model

    return load_model("cnn")
