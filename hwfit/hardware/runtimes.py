"""What the inference runtimes can really use here: ONNX Runtime providers, OpenVINO devices, torch CUDA.

A provider being compiled in is not enough (onnxruntime-gpu lists CUDA without a driver), so each
non-CPU provider is tried on a one-node model, after loading the CUDA, cuDNN and TensorRT libraries
that pip installed (ONNX Runtime does not find them by itself). Where one falls back, the libraries
its provider links and this process cannot load are named, with the command that installs them.
Runtimes are imported inside functions: none is required. Results are cached per process in
`_PROBE_CACHE`; `clear_runtime_cache()` empties it.
"""

import contextlib
import ctypes
import importlib.metadata
import importlib.util
import io
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwfit.core import is_gpu

_PROBE_CACHE: dict[str, Any] = {}

# Providers that run locally only when a test session really attaches them.
_REMOTE_PROVIDERS = {"AzureExecutionProvider": "calls a remote Azure endpoint; not a local device"}
# OpenVINO OPTIMIZATION_CAPABILITIES entries that are inference precisions (others are features).
_OPENVINO_PRECISIONS = ("FP32", "FP16", "BF16", "INT8", "INT4", "U8", "BIN")


@dataclass(frozen=True)
class RuntimeDevice:
    """One provider or device of a runtime, whether it is usable here, and why not."""

    name: str
    usable: bool
    reason: str | None = None  # why it is not usable, or how usability was checked
    full_name: str | None = None
    precisions: tuple[str, ...] = ()
    install: str | None = None  # the command that installs what is missing, where hwfit knows it

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "usable": self.usable,
            "reason": self.reason,
            "full_name": self.full_name,
            "precisions": list(self.precisions),
            "install": self.install,
        }


@dataclass(frozen=True)
class RuntimeReport:
    """A runtime: installed or not (and why), its version, and its devices."""

    runtime: str  # "onnxruntime", "openvino", "torch"
    installed: bool
    version: str | None
    reason: str | None  # why it is not installed
    devices: tuple[RuntimeDevice, ...] = ()
    notes: tuple[str, ...] = ()  # what was done or found while probing (libraries preloaded, conflicts)

    def usable_devices(self) -> list[str]:
        return [device.name for device in self.devices if device.usable]

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "installed": self.installed,
            "version": self.version,
            "reason": self.reason,
            "devices": [device.to_dict() for device in self.devices],
            "notes": list(self.notes),
        }


def clear_runtime_cache() -> None:
    """Forget probe results (tests, or after installing a runtime in the same process)."""
    _PROBE_CACHE.clear()


# --- ONNX Runtime ------------------------------------------------------------------------------


def ort_providers() -> RuntimeReport:
    """ONNX Runtime's compiled-in providers, each tried on a one-node model to see if it attaches."""
    if "onnxruntime" not in _PROBE_CACHE:
        _PROBE_CACHE["onnxruntime"] = _probe_ort()
    return _PROBE_CACHE["onnxruntime"]


# The GPU providers hwfit uses, and the shared library each loads from onnxruntime/capi.
GPU_PROVIDERS = {"CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "tensorrt"}
# Distributions that each install the `onnxruntime` package; two of them in one environment
# overwrite each other's files (the CUDA provider can vanish).
ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml")
ORT_CPU_INSTALL = "pip install 'hwfit[cpu]'"
ORT_GPU_INSTALL = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'hwfit[gpu]'"


def _probe_ort() -> RuntimeReport:
    try:
        import onnxruntime as ort
    except ImportError:
        return RuntimeReport(
            "onnxruntime",
            False,
            None,
            f"onnxruntime not installed: {ORT_CPU_INSTALL} (CPU), or {ORT_GPU_INSTALL} (NVIDIA GPUs)",
        )
    available = ort.get_available_providers()
    notes = [*_ort_distribution_notes(), *preload_gpu_libraries(ort, available)]
    devices = [_probe_provider(ort, name) for name in available]
    devices += _providers_not_built_in(available)
    return RuntimeReport("onnxruntime", True, ort.__version__, None, tuple(devices), tuple(notes))


def installed_ort_distributions() -> list[str]:
    """Which of the distributions that provide `import onnxruntime` are installed here."""
    found = []
    for name in ORT_DISTRIBUTIONS:
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def _ort_distribution_notes() -> list[str]:
    found = installed_ort_distributions()
    if len(found) < 2:
        return []
    return [
        f"{' and '.join(found)} are all installed and share one `onnxruntime` folder: whichever was installed "
        f"last won, and its providers may be missing files. Fix: {ORT_GPU_INSTALL} (or {ORT_CPU_INSTALL} on a CPU)"
    ]


def _providers_not_built_in(available: list[str]) -> list[RuntimeDevice]:
    """Where an NVIDIA GPU is visible but this ONNX Runtime build has no GPU providers: say so and how."""
    from hwfit.hardware.nvidia import discover_gpus

    missing = [name for name in GPU_PROVIDERS if name not in available]
    if not missing or not discover_gpus()[0]:
        return []
    return [
        RuntimeDevice(
            name,
            False,
            "not in this onnxruntime build (the CPU package); the GPU build is onnxruntime-gpu",
            install=ORT_GPU_INSTALL,
        )
        for name in missing
    ]


def preload_gpu_libraries(ort: Any, available: list[str]) -> list[str]:
    """Load the CUDA, cuDNN and TensorRT libraries pip installed, before any GPU session: ONNX
    Runtime's providers dlopen them by name and, not finding them on the loader's path, silently
    fall back to the CPU. Returns notes saying what was done. Idempotent."""
    notes = []
    if "CUDAExecutionProvider" in available and hasattr(ort, "preload_dlls"):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):  # it prints its warnings; stdout may be --json
            try:
                ort.preload_dlls()
            except Exception as error:  # a broken nvidia-* package: the probe below says what fails
                notes.append(f"onnxruntime.preload_dlls() failed: {_first_line(error)}")
        warnings = " ".join(printed.getvalue().split())
        done = "onnxruntime.preload_dlls() called (loads pip's CUDA/cuDNN libraries where installed)"
        notes.append(done + (f": {warnings}" if warnings else ""))
    if "TensorrtExecutionProvider" in available:
        loaded = _preload_tensorrt()
        if loaded:
            notes.append(f"loaded TensorRT from pip: {', '.join(loaded)}")
    return notes


def _preload_tensorrt() -> list[str]:
    """TensorRT's pip wheels put libnvinfer in the `tensorrt_libs` package folder, off the loader's
    path; loading them globally first lets the provider's dlopen by name find them."""
    spec = importlib.util.find_spec("tensorrt_libs")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = Path(next(iter(spec.submodule_search_locations)))
    loaded = []
    for pattern in ("libnvinfer.so.*", "libnvinfer_plugin.so.*", "libnvonnxparser.so.*"):
        for path in sorted(folder.glob(pattern)):
            try:
                ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            except OSError:
                continue
            loaded.append(path.name)
    return loaded


def _probe_provider(ort: Any, provider: str) -> RuntimeDevice:
    if provider == "CPUExecutionProvider":
        return RuntimeDevice(provider, True, "always available")
    if provider in _REMOTE_PROVIDERS:
        return RuntimeDevice(provider, False, _REMOTE_PROVIDERS[provider])
    try:
        model_bytes = _tiny_onnx_model()
    except ImportError:
        return RuntimeDevice(provider, False, "cannot test: onnx not installed (pip install onnx)")
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # a failed provider logs a wall of warnings otherwise
        session = ort.InferenceSession(model_bytes, options, providers=[provider, "CPUExecutionProvider"])
    except Exception as error:  # ORT raises its own Fail/RuntimeException types per build
        return RuntimeDevice(provider, False, f"session creation failed: {_first_line(error)}")
    if provider not in session.get_providers():
        return _fell_back(ort, provider)
    return RuntimeDevice(provider, True, "attached to a test session")


def _fell_back(ort: Any, provider: str) -> RuntimeDevice:
    """A compiled-in GPU provider that did not attach: the libraries it links that cannot be loaded
    here, and the command that installs them; else the driver or GPU is what is missing."""
    library = provider_library(ort, provider)
    missing = missing_libraries(elf_needed(library)) if library else []
    if missing:
        return RuntimeDevice(
            provider,
            False,
            f"compiled in, but the session fell back to CPU: cannot load {', '.join(missing)}",
            install=install_command(missing, _ort_cuda_version(ort), ort.__version__),
        )
    from hwfit.hardware.nvidia import discover_gpus

    gpus, gpu_reason = discover_gpus()
    if not gpus:
        return RuntimeDevice(provider, False, f"compiled in, but the session fell back to CPU: {gpu_reason}")
    return RuntimeDevice(
        provider,
        False,
        "compiled in, but the session fell back to CPU although its libraries load: the GPU, driver and "
        "library versions may not match (run with ORT logging at level 0 for the error)",
    )


def provider_library(ort: Any, provider: str) -> Path | None:
    """The provider's shared library inside the onnxruntime package, where it is a separate file."""
    short = GPU_PROVIDERS.get(provider)
    if short is None:
        return None
    path = Path(ort.__file__).parent / "capi" / f"libonnxruntime_providers_{short}.so"
    return path if path.exists() else None


def _ort_cuda_version(ort: Any) -> str | None:
    try:
        from onnxruntime.capi import build_and_package_info
    except ImportError:
        return None
    return getattr(build_and_package_info, "cuda_version", None) or None


# The NVIDIA libraries a provider links; others (libc, ORT's own shared provider) are not ours to name.
_NVIDIA_LIBRARY = re.compile(r"^lib(cu|nv|cudnn)")


def elf_needed(path: Path) -> list[str]:
    """The DT_NEEDED entries (libraries linked by name) of a 64-bit little-endian ELF shared library."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return []
    (section_offset,) = struct.unpack_from("<Q", data, 0x28)
    entry_size, count = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, section_offset + i * entry_size) for i in range(count)]
    needed = []
    for _name, kind, _flags, _addr, offset, size, link, _info, _align, _entsize in sections:
        if kind != 6:  # SHT_DYNAMIC
            continue
        strings_offset = sections[link][4]
        for position in range(offset, offset + size, 16):
            tag, value = struct.unpack_from("<qQ", data, position)
            if tag == 0:  # DT_NULL
                break
            if tag == 1:  # DT_NEEDED
                end = data.index(b"\0", strings_offset + value)
                needed.append(data[strings_offset + value : end].decode())
    return needed


def missing_libraries(needed: list[str]) -> list[str]:
    """The NVIDIA libraries among `needed` that this process cannot load by name."""
    missing = []
    for name in needed:
        if not _NVIDIA_LIBRARY.match(name):
            continue
        try:
            ctypes.CDLL(name)
        except OSError:
            missing.append(name)
    return missing


def install_command(missing: list[str], cuda_version: str | None, ort_version: str) -> str:
    """The pip command that provides `missing` for this onnxruntime-gpu build: its CUDA/cuDNN extras,
    and TensorRT's libraries of the major version the provider links, for its CUDA major."""
    commands = []
    tensorrt_pattern = re.compile(r"libnv(?:infer|onnxparser)\S*\.so\.(\d+)")
    tensorrt = sorted({m.group(1) for m in (tensorrt_pattern.match(name) for name in missing) if m})
    if any(not re.match(r"libnv(infer|onnxparser)", name) for name in missing):
        commands.append(f"pip install 'onnxruntime-gpu[cuda,cudnn]=={ort_version}'")
    if tensorrt:
        cuda_major = (cuda_version or "12").split(".")[0]
        commands.append(f"pip install 'tensorrt-cu{cuda_major}-libs=={tensorrt[0]}.*'")
    return " && ".join(commands)


def _tiny_onnx_model() -> bytes:
    """A one-node model (y = x + x) to check a provider attaches; opset 13 every ORT build reads."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "hwfit_probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


# --- OpenVINO ----------------------------------------------------------------------------------


def openvino_devices() -> RuntimeReport:
    """OpenVINO's devices with their full names and the precisions they optimise for."""
    if "openvino" not in _PROBE_CACHE:
        _PROBE_CACHE["openvino"] = _probe_openvino()
    return _PROBE_CACHE["openvino"]


def _probe_openvino() -> RuntimeReport:
    try:
        import openvino
    except ImportError:
        return RuntimeReport("openvino", False, None, "openvino not installed: pip install 'hwfit[openvino]'")
    version = getattr(openvino, "__version__", None)
    try:
        core = openvino.Core()
        names = list(core.available_devices)
    except Exception as error:  # a broken plugin install raises RuntimeError from C++
        return RuntimeReport("openvino", True, version, None, (RuntimeDevice("openvino", False, _first_line(error)),))
    return RuntimeReport("openvino", True, version, None, tuple(_openvino_device(core, name) for name in names))


def _openvino_device(core: Any, name: str) -> RuntimeDevice:
    try:
        full_name = str(core.get_property(name, "FULL_DEVICE_NAME"))
        capabilities = [str(item) for item in core.get_property(name, "OPTIMIZATION_CAPABILITIES")]
    except Exception as error:
        return RuntimeDevice(name, False, f"device listed but not queryable: {_first_line(error)}")
    precisions = tuple(item for item in capabilities if item in _OPENVINO_PRECISIONS)
    return RuntimeDevice(name, True, "listed by openvino.Core().available_devices", full_name, precisions)


# --- PyTorch -----------------------------------------------------------------------------------


def torch_cuda_available() -> tuple[bool, str | None]:
    """(True, None) when torch can run on a CUDA GPU here, else (False, why not)."""
    report = torch_report()
    cuda = [device for device in report.devices if is_gpu(device.name)]
    if not report.installed:
        return False, report.reason
    if cuda and cuda[0].usable:
        return True, None
    return False, cuda[0].reason if cuda else "torch reports no CUDA device"


def torch_report() -> RuntimeReport:
    """torch's version and devices: cpu always, cuda:N when torch.cuda.is_available()."""
    if "torch" not in _PROBE_CACHE:
        _PROBE_CACHE["torch"] = _probe_torch()
    return _PROBE_CACHE["torch"]


def _probe_torch() -> RuntimeReport:
    try:
        import torch
    except ImportError:
        return RuntimeReport("torch", False, None, "torch not installed: pip install 'hwfit[torch]'")
    devices = [RuntimeDevice("cpu", True, "always available")]
    devices.extend(_torch_cuda_devices(torch))
    return RuntimeReport("torch", True, torch.__version__, None, tuple(devices))


def _torch_cuda_devices(torch: Any) -> list[RuntimeDevice]:
    if torch.version.cuda is None:
        return [RuntimeDevice("cuda", False, f"this torch build ({torch.__version__}) has no CUDA support")]
    if not torch.cuda.is_available():
        return [RuntimeDevice("cuda", False, f"torch built for CUDA {torch.version.cuda}, but no usable GPU/driver")]
    devices = []
    for index in range(torch.cuda.device_count()):
        properties = torch.cuda.get_device_properties(index)
        capability = f"{properties.major}.{properties.minor}"
        devices.append(
            RuntimeDevice(
                f"cuda:{index}",
                True,
                f"torch.cuda, CUDA {torch.version.cuda}, compute capability {capability}",
                properties.name,
                _torch_cuda_precisions(properties.major, properties.minor),
            )
        )
    return devices


def _torch_cuda_precisions(major: int, minor: int) -> tuple[str, ...]:
    """Tensor-core precisions by architecture: TF32/BF16 from Ampere (8.0), FP8 from Ada/Hopper (8.9)."""
    precisions = ["fp32", "fp16", "int8"]
    if major >= 8:
        precisions += ["tf32", "bf16"]
    if (major, minor) >= (8, 9):
        precisions.append("fp8")
    return tuple(precisions)
