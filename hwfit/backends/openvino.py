"""OpenVINO runtime on the CPU: the ONNX model compiled for static shapes, with the inference
precision set explicitly for every variant (its CPU plugin runs bf16 on AVX512_BF16/AMX unless told)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from hwfit.backends import onnx_convert
from hwfit.backends.base import Backend, Runner
from hwfit.core import BackendError, InputSpecError, Variant, usable_threads
from hwfit.models import Model

# Our precision -> (OpenVINO INFERENCE_PRECISION_HINT, the capability the device must list).
PRECISION_HINTS = {
    "fp32": ("f32", "FP32"),
    "bf16": ("bf16", "BF16"),
    "fp16": ("f16", "FP16"),
    "int8-static": ("f32", "INT8"),
}
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT")
# How OpenVINO names the element type it compiled for, per hint.
HINT_TYPE_NAMES = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}


def owns_every_core(variant: Variant) -> bool:
    """Whether the CPU plugin may pin its threads: only where this process is the one running on every
    usable core. It pins to the first cores of the affinity mask, so K processes of t < all threads
    all pinned to the same cores: 2 replicas of 1 thread ran at the throughput of one (each batch twice
    as long) until this was checked. Pinning is worth ~3% to a process that owns the CPU."""
    return variant.replicas == 1 and variant.intra_op_threads >= usable_threads()


def _device_name(device: str) -> str:
    return "CPU" if device == "cpu" else device.upper()


class OpenvinoRunner(Runner):
    def __init__(self, model: Model, variant: Variant):
        super().__init__(model, variant)
        import openvino as ov

        core = ov.Core()
        source = self._source_file(model, variant)
        ov_model = core.read_model(str(source))
        self.shapes = model.inputs.shapes(variant.batch_size)
        # Static shapes let the CPU plugin pick its fastest kernels; the variant fixes the batch.
        ov_model.reshape({name: list(shape) for name, shape in self.shapes.items()})
        hint, _ = PRECISION_HINTS[variant.precision]
        config = {
            "INFERENCE_PRECISION_HINT": hint,
            "INFERENCE_NUM_THREADS": variant.intra_op_threads,
            "PERFORMANCE_HINT": variant.knob("performance_hint", "LATENCY"),
            "NUM_STREAMS": int(variant.knob("streams", "1")),
        }
        if variant.device == "cpu":
            config["ENABLE_CPU_PINNING"] = owns_every_core(variant)
        try:
            self.compiled = core.compile_model(ov_model, _device_name(variant.device), config)
        except Exception as error:
            raise BackendError(f"{variant.key}: OpenVINO could not compile {source.name}: {error}") from error
        self._check_precision(hint)
        self.request = self.compiled.create_infer_request()
        self.output_names = list(model.output_names)
        self.outputs = list(self.compiled.outputs)

    def _source_file(self, model: Model, variant: Variant):
        if variant.precision != "int8-static":
            return model.onnx_path()
        # OpenVINO reads ONNX QuantizeLinear/DequantizeLinear pairs and runs those layers in int8.
        path, seconds, cached = onnx_convert.int8_static(model, variant.knob_flag("per_channel", True))
        self.stats.convert_s, self.stats.convert_cached = seconds, cached
        return path

    def _check_precision(self, hint: str) -> None:
        actual = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        expected = HINT_TYPE_NAMES[hint]
        if f"'{expected}'" not in actual:
            raise BackendError(f"{self.variant.key}: asked OpenVINO for {expected} but it compiled for {actual}")
        self.stats.notes.append(f"OpenVINO inference precision {expected} (verified after compile)")

    def run_unchecked(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, array in inputs.items():
            if array.shape != self.shapes[name]:
                raise InputSpecError(
                    f"{self.variant.key} is compiled for {name} shape {list(self.shapes[name])}, "
                    f"got {list(array.shape)}"
                )
        results = self.request.infer(dict(inputs))
        return {name: np.asarray(results[port]) for name, port in zip(self.output_names, self.outputs)}

    def close(self) -> None:
        self.request = None
        self.compiled = None


class OpenvinoBackend(Backend):
    name = "openvino"
    summary = "OpenVINO runtime (CPU plugin), static shapes, inference precision set explicitly"
    precisions = ("fp32", "bf16", "fp16", "int8-static")
    runtime_modules = ("openvino",)

    def package_reason(self) -> str | None:
        from hwfit.hardware import openvino_devices

        report = openvino_devices()
        return None if report.installed else report.reason

    def devices(self) -> list[str]:
        from hwfit.hardware import openvino_devices

        return ["cpu" if name == "CPU" else name.lower() for name in openvino_devices().usable_devices()]

    def precision_reason(self, model: Model, variant: Variant) -> str | None:
        from hwfit.hardware import openvino_devices

        _, capability = PRECISION_HINTS[variant.precision]
        for device in openvino_devices().devices:
            if device.name == _device_name(variant.device) and capability not in device.precisions:
                return (
                    f"{variant.precision} on {variant.device}: OpenVINO lists {', '.join(device.precisions)} "
                    f"for {device.full_name or device.name}, not {capability}"
                )
        return None

    def _load(self, model: Model, variant: Variant) -> Runner:
        hint = variant.knob("performance_hint", "LATENCY")
        if hint not in PERFORMANCE_HINTS:
            raise BackendError(f"{variant.key}: performance_hint '{hint}' is unknown; expected {PERFORMANCE_HINTS}")
        return OpenvinoRunner(model, variant)
