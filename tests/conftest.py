"""Shared fixtures: a private cache per test session, and the built-in models loaded once."""

import os
import tempfile

import pytest

# Hermetic: conversions, exports and the CNN's weights are made fresh for the suite, not taken
# from a developer's ~/.cache/hwfit. Set before anything imports hwfit.
os.environ.setdefault("HWFIT_CACHE", tempfile.mkdtemp(prefix="hwfit-test-cache-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU with CUDA; none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def minilm():
    from hwfit.models import load_model

    return load_model("minilm")


@pytest.fixture(scope="session")
def cnn():
    from hwfit.models import load_model

    return load_model("cnn")
