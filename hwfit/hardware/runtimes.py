"""What the inference runtimes can really use here: ONNX Runtime providers, OpenVINO devices, torch CUDA.

A provider being compiled in is not enough (onnxruntime-gpu lists CUDA without a driver), so each
non-CPU provider is tried on a one-node model. Runtimes are imported inside functions: none is
required. Results are cached per process in `_PROBE_CACHE`; `clear_runtime_cache()` empties it.
"""

from dataclasses import dataclass
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "usable": self.usable,
            "reason": self.reason,
            "full_name": self.full_name,
            "precisions": list(self.precisions),
        }


@dataclass(frozen=True)
class RuntimeReport:
    """A runtime: installed or not (and why), its version, and its devices."""

    runtime: str  # "onnxruntime", "openvino", "torch"
    installed: bool
    version: str | None
    reason: str | None  # why it is not installed
    devices: tuple[RuntimeDevice, ...] = ()

    def usable_devices(self) -> list[str]:
        return [device.name for device in self.devices if device.usable]

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "installed": self.installed,
            "version": self.version,
            "reason": self.reason,
            "devices": [device.to_dict() for device in self.devices],
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


def _probe_ort() -> RuntimeReport:
    try:
        import onnxruntime as ort
    except ImportError:
        return RuntimeReport("onnxruntime", False, None, "onnxruntime not installed: pip install onnxruntime")
    devices = tuple(_probe_provider(ort, name) for name in ort.get_available_providers())
    return RuntimeReport("onnxruntime", True, ort.__version__, None, devices)


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
        return RuntimeDevice(
            provider, False, "compiled in, but the session fell back to CPU (driver, CUDA or cuDNN libraries missing)"
        )
    return RuntimeDevice(provider, True, "attached to a test session")


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
