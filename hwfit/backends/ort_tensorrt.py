"""ONNX Runtime with the TensorRT execution provider (CUDA as fallback for unsupported nodes):
fp32 (TF32 off), tf32, fp16 and int8 (from a signed symmetric QDQ model) through TensorRT's own
kernels; one engine per batch range (an optimization profile from batch 1 to the variant's batch,
so the serving batcher's smaller batches reuse it) and a timing cache, both on disk."""

from __future__ import annotations

import os
from typing import Any

from hwfit.backends.base import Backend, Runner
from hwfit.backends.ort import OrtRunner, cuda_index
from hwfit.backends.tf32 import TF32_MIN_CAPABILITY, TF32_OVERRIDE_ENV, capability_of, ort_cuda_options, tf32_reason
from hwfit.core import BackendError, Variant, cache_dir, is_gpu
from hwfit.models import InputSpec, Model


def profile_shapes(inputs: InputSpec, max_batch: int, opt_batch: int | None = None) -> dict[str, str]:
    """TensorRT optimization-profile options for every input: batch 1 to `max_batch`, tuned at
    `opt_batch` (default `max_batch`), other dims at the model's default sizes.

    Without them TensorRT builds an engine for each new input shape it meets, which a dynamic
    batcher (any batch from 1 to its maximum) would trigger again and again.
    """
    opt_batch = opt_batch or max_batch
    if not 1 <= opt_batch <= max_batch:
        raise BackendError(f"TensorRT profile: opt batch {opt_batch} must lie in 1..{max_batch}")

    def at(batch: int) -> str:
        return ",".join(f"{name}:{'x'.join(str(d) for d in shape)}" for name, shape in inputs.shapes(batch).items())

    return {
        "trt_profile_min_shapes": at(1),
        "trt_profile_opt_shapes": at(opt_batch),
        "trt_profile_max_shapes": at(max_batch),
    }


def tensorrt_options(model: Model, variant: Variant) -> dict[str, Any]:
    """TensorrtExecutionProvider options for `variant` (its batch size is the profile's maximum)."""
    # Engines and timing caches per precision: ONNX Runtime's engine key does not include the
    # TF32 setting, so an fp32 engine must never be found where a tf32 one was built.
    cache = cache_dir("tensorrt") / variant.precision
    return {
        "device_id": cuda_index(variant.device),
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache),
        # fp16: TensorRT picks fp16 kernels from the fp32 graph; int8: it reads the QDQ scales
        # and runs the layers left in float in fp16.
        "trt_fp16_enable": variant.precision in ("fp16", "int8-static"),
        "trt_int8_enable": variant.precision == "int8-static",
        **profile_shapes(model.inputs, variant.batch_size),
    }


class OrtTensorrtBackend(Backend):
    name = "ort-trt"
    summary = "ONNX Runtime TensorrtExecutionProvider (engine and timing cache on disk), CUDA EP for the rest"
    precisions = ("fp32", "tf32", "fp16", "int8-static")
    runtime_modules = ("onnxruntime",)

    def package_reason(self) -> str | None:
        from hwfit.hardware import ort_providers

        report = ort_providers()
        if not report.installed:
            return report.reason
        for device in report.devices:
            if device.name == "TensorrtExecutionProvider" and not device.usable:
                return f"TensorrtExecutionProvider is not usable here: {device.reason}"
        if "TensorrtExecutionProvider" not in [d.name for d in report.devices]:
            return "TensorrtExecutionProvider is not in this onnxruntime build: pip install 'hwfit[gpu]'"
        return None

    def devices(self) -> list[str]:
        from hwfit.hardware import device_names, ort_providers

        if "TensorrtExecutionProvider" not in ort_providers().usable_devices():
            return []
        return [d for d in device_names() if is_gpu(d)]

    def precision_reason(self, model: Model, variant: Variant) -> str | None:
        if variant.precision == "tf32":
            return tf32_reason(variant.device)
        return None

    def _load(self, model: Model, variant: Variant) -> Runner:
        index = cuda_index(variant.device)
        note = _fp32_without_tf32(variant)
        providers = [
            ("TensorrtExecutionProvider", tensorrt_options(model, variant)),
            ("CUDAExecutionProvider", ort_cuda_options(index, variant.precision)),
        ]
        runner = OrtRunner(model, variant, providers)
        runner.stats.notes.append(f"TensorRT profile batch 1..{variant.batch_size}, engine and timing cache on disk")
        if note:
            runner.stats.notes.append(note)
        return runner


def _fp32_without_tf32(variant: Variant) -> str | None:
    """fp32 on a TF32-capable GPU: TensorRT allows TF32 by default (BuilderFlag kTF32) and ONNX
    Runtime's TensorRT provider has no option to clear it, so NVIDIA's process-wide switch is set
    before the engine is built (each point and each serving replica is its own process)."""
    if variant.precision != "fp32":
        return None
    capability = capability_of(variant.device)
    if capability is not None and capability < TF32_MIN_CAPABILITY:
        return None
    os.environ[TF32_OVERRIDE_ENV] = "0"
    return f"{TF32_OVERRIDE_ENV}=0 set in this process: TensorRT builds IEEE fp32 (it would use TF32 otherwise)"
