"""What a run measured on: hwfit and library versions, CUDA and driver, CPU and GPU names.

Fast (no heavy imports: torch is asked only if already imported) and never raises: a probe that
fails leaves its field None.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import hwfit
from hwfit.hardware import GpuInfo, discover_cpu, discover_gpus
from hwfit.store import Environment, hostname_hash

_GIT_TIMEOUT_S = 0.5
# The distributions that provide `import onnxruntime`; the first installed one wins.
_ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml")

T = TypeVar("T")


def capture_environment() -> Environment:
    """The environment of this process, for the run it is about to record."""
    gpus = _safe(_gpus, [])
    commit = _safe(_git_commit, None)
    ort_version, ort_distribution = _safe(_onnxruntime_version, (None, None))
    cuda, cuda_source = _safe(lambda: _cuda_version(gpus), (None, None))
    cpu = _safe(discover_cpu, None)
    extra: dict[str, Any] = {
        "platform": _safe(platform.platform, None),
        "machine": platform.machine() or None,
        "python_implementation": platform.python_implementation(),
        # what decides how fast the same code runs here: cores, the frequency governor, container limits
        "cpu_count": cpu.logical_threads if cpu else None,
        "usable_cores": cpu.usable_threads if cpu else None,
        "cpu_governor": cpu.governor if cpu else None,
        "container_cpu_limit": cpu.cgroup_cpu_limit if cpu else None,
        "container_memory_limit_bytes": cpu.cgroup_memory_limit_bytes if cpu else None,
    }
    if ort_distribution not in (None, "onnxruntime"):
        extra["onnxruntime_distribution"] = ort_distribution
    if cuda_source:
        extra["cuda_source"] = cuda_source
    if commit is not None:
        extra["hwfit_dirty"] = _safe(_git_dirty, None)  # uncommitted edits: the commit alone is not the code
    return Environment(
        hwfit_version=hwfit.__version__,
        hwfit_commit=commit,
        python=platform.python_version(),
        numpy=_distribution_version("numpy"),
        onnxruntime=ort_version,
        torch=_distribution_version("torch"),
        openvino=_distribution_version("openvino"),
        cuda=cuda,
        nvidia_driver=gpus[0].driver_version if gpus else None,
        cpu_model=cpu.model_name if cpu else None,
        gpu_names=tuple(gpu.name for gpu in gpus),
        hostname_hash=_safe(hostname_hash, "unknown"),
        extra=extra,
    )


def _git_commit() -> str | None:
    """HEAD of the hwfit source tree when hwfit runs from a git checkout; None when installed."""
    source_root = Path(hwfit.__file__).resolve().parent.parent
    result = subprocess.run(
        ["git", "rev-parse", "--show-toplevel", "HEAD"],
        cwd=source_root,
        capture_output=True,
        text=True,
        timeout=_GIT_TIMEOUT_S,
        check=False,
    )
    lines = result.stdout.split()
    if result.returncode != 0 or len(lines) != 2:
        return None
    # A wheel installed in a venv inside some other repository must not report that repository's HEAD.
    if Path(lines[0]).resolve() != source_root:
        return None
    return lines[1]


def _git_dirty() -> bool | None:
    result = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=Path(hwfit.__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=_GIT_TIMEOUT_S,
        check=False,
    )
    return bool(result.stdout.strip()) if result.returncode == 0 else None


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    except Exception:  # a broken install's metadata must not stop a run
        return None


def _onnxruntime_version() -> tuple[str | None, str | None]:
    for distribution in _ORT_DISTRIBUTIONS:
        version = _distribution_version(distribution)
        if version is not None:
            return version, distribution
    return None, None


def _gpus() -> list[GpuInfo]:
    gpus, _reason = discover_gpus()
    return gpus


def _cuda_version(gpus: list[GpuInfo]) -> tuple[str | None, str | None]:
    """CUDA from an already-imported torch (the runtime it was built with), else what the driver supports."""
    torch = sys.modules.get("torch")
    torch_cuda = getattr(getattr(torch, "version", None), "cuda", None) if torch is not None else None
    if torch_cuda:
        return str(torch_cuda), "torch.version.cuda"
    if gpus and gpus[0].cuda_driver_version:
        return gpus[0].cuda_driver_version, "NVML nvmlSystemGetCudaDriverVersion (highest the driver supports)"
    return None, None


def _safe(probe: Callable[[], T], fallback: T) -> T:
    try:
        return probe()
    except Exception:
        return fallback
