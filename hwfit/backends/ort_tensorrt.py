"""ONNX Runtime with the TensorRT execution provider (CUDA as fallback for unsupported nodes),
engines cached on disk; fp16 and int8 (from the QDQ model) through TensorRT's own kernels."""

from __future__ import annotations

from hwfit.backends.base import Backend, Runner
from hwfit.backends.ort import OrtRunner, cuda_index
from hwfit.core import Variant, cache_dir, is_gpu
from hwfit.models import Model


class OrtTensorrtBackend(Backend):
    name = "ort-trt"
    summary = "ONNX Runtime TensorrtExecutionProvider (engine cache on disk), CUDA EP for the rest"
    precisions = ("fp32", "fp16", "int8-static")
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
            return "TensorrtExecutionProvider is not in this onnxruntime build: install onnxruntime-gpu and TensorRT"
        return None

    def devices(self) -> list[str]:
        from hwfit.hardware import device_names, ort_providers

        if "TensorrtExecutionProvider" not in ort_providers().usable_devices():
            return []
        return [d for d in device_names() if is_gpu(d)]

    def _load(self, model: Model, variant: Variant) -> Runner:
        index = cuda_index(variant.device)
        options = {
            "device_id": index,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache_dir("tensorrt")),
            # fp16: TensorRT picks fp16 kernels from the fp32 graph; int8: it reads the QDQ scales.
            "trt_fp16_enable": variant.precision in ("fp16", "int8-static"),
            "trt_int8_enable": variant.precision == "int8-static",
        }
        providers = [("TensorrtExecutionProvider", options), ("CUDAExecutionProvider", {"device_id": index})]
        # The QDQ model comes from the shared cache; fp16 stays an fp32 graph with trt_fp16_enable.
        as_fp32 = Variant(
            variant.backend,
            variant.device,
            "fp32" if variant.precision == "fp16" else variant.precision,
            variant.batch_size,
            variant.threads,
            variant.knobs,
        )
        runner = OrtRunner(model, as_fp32, providers)
        runner.variant = variant
        return runner
