"""ONNX Runtime: the CPU execution provider, and the CUDA provider with IOBinding on NVIDIA GPUs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hwfit.backends import onnx_convert
from hwfit.backends.base import Backend, Runner
from hwfit.backends.tf32 import ort_cuda_options, tf32_reason
from hwfit.core import BackendError, Device, Variant, is_gpu
from hwfit.models import Model

OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def model_file_for(model: Model, variant: Variant, runner: Runner) -> Path:
    """The ONNX file for the variant's precision, converting (through the cache) when needed."""
    path, seconds, cached = onnx_file(model, variant)
    if path != model.onnx_path():
        runner.stats.convert_s, runner.stats.convert_cached = seconds, cached
        runner.stats.notes.append(
            f"converted to {variant.precision}" + (" (from cache)" if cached else f" in {seconds:.1f} s")
        )
    return path


def onnx_file(model: Model, variant: Variant) -> tuple[Path, float, bool]:
    """(ONNX file that runs `variant`'s precision, seconds spent converting, found in cache)."""
    per_channel = variant.knob_flag("per_channel", True)
    converters = {
        "int8-dynamic": lambda: onnx_convert.int8_dynamic(model, per_channel),
        "int8-static": lambda: onnx_convert.int8_static(model, per_channel),
        "fp16": lambda: onnx_convert.float16(model),
    }
    if variant.backend == "ort-trt":
        # TensorRT builds fp16 (and tf32) engines from the fp32 graph itself; int8 from a QDQ
        # graph in the signed symmetric form its explicit quantization reads.
        converters = {"int8-static": lambda: onnx_convert.int8_static_tensorrt(model, per_channel)}
    if variant.precision not in converters:
        return model.onnx_path(), 0.0, True
    return converters[variant.precision]()


def session_options(variant: Variant):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = variant.intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    level = variant.knob("opt_level", "all")
    if level not in OPT_LEVELS:
        raise BackendError(f"{variant.key}: opt_level '{level}' is unknown; expected one of {', '.join(OPT_LEVELS)}")
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[level])
    options.log_severity_level = 3
    return options


def cuda_index(device: str) -> int:
    return Device.parse(device).index


class OrtRunner(Runner):
    """An InferenceSession; on CUDA it runs through IOBinding so device-resident IO is possible."""

    def __init__(self, model: Model, variant: Variant, providers: list):
        super().__init__(model, variant)
        import onnxruntime as ort

        path = model_file_for(model, variant, self)
        try:
            self.session = ort.InferenceSession(str(path), session_options(variant), providers=providers)
        except Exception as error:
            raise BackendError(f"{variant.key}: ONNX Runtime could not load {path.name}: {error}") from error
        wanted = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
        active = self.session.get_providers()
        # ORT falls back to the CPU provider silently when a GPU provider fails: labels are the truth.
        if active[0] != wanted:
            raise BackendError(f"{variant.key}: asked for {wanted} but ONNX Runtime runs {active[0]}")
        self.stats.notes.append(f"provider {active[0]}, {session_options(variant).intra_op_num_threads} threads")
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.on_gpu = is_gpu(variant.device)
        self.supports_device_io = self.on_gpu

    def run_unchecked(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.on_gpu:
            return self.to_host(self.run_on_device(self.to_device(inputs)))
        values = self.session.run(self.output_names, dict(inputs))
        return dict(zip(self.output_names, values))

    def to_device(self, inputs: Mapping[str, np.ndarray]) -> Any:
        import onnxruntime as ort

        index = cuda_index(self.variant.device)
        return {
            name: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), "cuda", index)
            for name, array in inputs.items()
        }

    def run_on_device(self, handle: Any) -> Any:
        binding = self.session.io_binding()
        for name, value in handle.items():
            binding.bind_ortvalue_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, "cuda", cuda_index(self.variant.device))
        self.session.run_with_iobinding(binding)
        return binding.get_outputs()

    def to_host(self, result: Any) -> dict[str, np.ndarray]:
        return {name: value.numpy() for name, value in zip(self.output_names, result)}

    def close(self) -> None:
        self.session = None


class OrtBackend(Backend):
    name = "ort"
    summary = "ONNX Runtime: CPUExecutionProvider on the CPU, CUDAExecutionProvider (IOBinding) on NVIDIA GPUs"
    precisions = ("fp32", "tf32", "fp16", "int8-dynamic", "int8-static")
    runtime_modules = ("onnxruntime",)

    def devices(self) -> list[str]:
        from hwfit.hardware import device_names, ort_providers

        usable = set(ort_providers().usable_devices())
        found = ["cpu"] if "CPUExecutionProvider" in usable else []
        if "CUDAExecutionProvider" in usable:
            found += [d for d in device_names() if is_gpu(d)]
        return found

    def precision_reason(self, model: Model, variant: Variant) -> str | None:
        if variant.precision == "tf32":
            return tf32_reason(variant.device)
        on_cpu = variant.device == "cpu"
        if variant.precision == "fp16" and on_cpu:
            return "fp16 on cpu: not supported by CPUExecutionProvider (most kernels are fp32-only)"
        if variant.precision.startswith("int8") and not on_cpu:
            return f"{variant.precision} on {variant.device}: CUDAExecutionProvider has no int8 kernels; use ort-trt"
        return None

    def _load(self, model: Model, variant: Variant) -> Runner:
        if variant.device == "cpu":
            return OrtRunner(model, variant, ["CPUExecutionProvider"])
        # fp32 runs IEEE fp32: the CUDA provider's use_tf32 defaults to on for matmuls and convolutions.
        options = ort_cuda_options(cuda_index(variant.device), variant.precision)
        runner = OrtRunner(model, variant, [("CUDAExecutionProvider", options), "CPUExecutionProvider"])
        if variant.precision in ("fp32", "tf32"):
            runner.stats.notes.append(f"CUDAExecutionProvider use_tf32={options['use_tf32']}")
        return runner
