"""PyTorch eager on the CPU and CUDA, under inference_mode; bf16/fp16 by casting the module,
int8 by dynamic quantization of its Linear layers (torch.ao, CPU)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np

from hwfit.backends.base import Backend, Runner
from hwfit.backends.tf32 import set_torch_fp32_math, tf32_reason
from hwfit.core import BackendError, Variant
from hwfit.models import Model

TORCH_DTYPES = {"fp32": "float32", "tf32": "float32", "bf16": "bfloat16", "fp16": "float16", "int8-dynamic": "float32"}
# CPU ISA features that make a precision run natively rather than through slow emulation.
CPU_FEATURES = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("avx512_fp16", "amx_fp16")}


def _cpu_reason(precision: str) -> str | None:
    from hwfit.hardware import discover_cpu

    cpu = discover_cpu()
    features = CPU_FEATURES.get(precision)
    if features and not any(cpu.has(feature) for feature in features):
        return f"{precision} on cpu: this CPU has none of {', '.join(f.upper() for f in features)}"
    return None


def _cuda_reason(device: str, precision: str) -> str | None:
    from hwfit.hardware import torch_report

    for found in torch_report().devices:
        if found.name == device and precision.split("-")[0] not in found.precisions:
            return f"{precision} on {device}: {found.full_name} supports {', '.join(found.precisions)}"
    return None


class TorchRunner(Runner):
    """A private copy of the model's module, cast and placed for the variant."""

    def __init__(self, model: Model, variant: Variant):
        super().__init__(model, variant)
        import torch

        self.torch = torch
        self.device = torch.device(variant.device)
        self.dtype = getattr(torch, TORCH_DTYPES[variant.precision])
        torch.set_num_threads(variant.intra_op_threads)  # process-wide: one variant per process
        if self.device.type == "cuda" and variant.precision in ("fp32", "tf32"):
            # Also process-wide; cuDNN convolutions would otherwise run TF32 under the name fp32.
            self.stats.notes.append(set_torch_fp32_math(torch, variant.precision))
        self.reset_device_memory_peak()  # the accuracy runner's peak is not this runner's
        module = copy.deepcopy(model.torch_module()).eval()
        if variant.precision == "int8-dynamic":
            module = self._quantize_dynamic(module)
        else:
            module = module.to(device=self.device, dtype=self.dtype)
        self.module = self.prepare(module)
        self.stats.notes.append(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, {self._weights_dtype()}"
        )

    def _quantize_dynamic(self, module: Any) -> Any:
        import warnings

        from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

        linear_count = sum(isinstance(m, self.torch.nn.Linear) for m in module.modules())
        if linear_count == 0:
            raise BackendError(f"{self.variant.key}: the model has no nn.Linear layers for dynamic int8 quantization")
        # Per-channel weight scales by default: per-tensor loses ~5% cosine on MiniLM.
        per_channel = self.variant.knob_flag("per_channel", True)
        qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
        self.stats.notes.append(
            f"{linear_count} Linear layers quantized to int8 (torch.ao dynamic, "
            f"{'per-channel' if per_channel else 'per-tensor'}, "
            f"engine {self.torch.backends.quantized.engine})"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao's deprecation notices, printed on every call
            return quantize_dynamic(module, {self.torch.nn.Linear: qconfig}, dtype=self.torch.qint8)

    def _weights_dtype(self) -> str:
        dtypes = (
            {str(p.dtype).replace("torch.", "") for p in self.module.parameters()}
            if hasattr(self.module, "parameters")
            else set()
        )
        return "weights " + ("/".join(sorted(dtypes)) or "packed int8")

    def prepare(self, module: Any) -> Any:
        """Hook for subclasses (torch.compile)."""
        return module

    def to_device(self, inputs: Mapping[str, np.ndarray]) -> tuple:
        tensors = []
        for name in self.model.inputs.names:
            tensor = self.torch.from_numpy(np.ascontiguousarray(inputs[name])).to(self.device, non_blocking=True)
            if tensor.is_floating_point():
                tensor = tensor.to(self.dtype)
            tensors.append(tensor)
        return tuple(tensors)

    def run_on_device(self, handle: tuple) -> Any:
        with self.torch.inference_mode():
            return self.module(*handle)

    def to_host(self, result: Any) -> dict[str, np.ndarray]:
        from hwfit.models import outputs_to_numpy

        return outputs_to_numpy(self.model, result)

    def run_unchecked(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.to_host(self.run_on_device(self.to_device(inputs)))

    @property
    def supports_device_io(self) -> bool:  # type: ignore[override]
        return self.device.type == "cuda"

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def device_memory_peak_bytes(self) -> int | None:
        if self.device.type != "cuda":
            return None
        return int(self.torch.cuda.max_memory_allocated(self.device))

    def reset_device_memory_peak(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.reset_peak_memory_stats(self.device)

    def close(self) -> None:
        self.module = None
        if self.device.type == "cuda":
            self.torch.cuda.empty_cache()


class TorchEagerBackend(Backend):
    name = "torch"
    summary = "PyTorch eager under inference_mode (CPU, CUDA); int8 = torch.ao dynamic quantization"
    precisions = ("fp32", "tf32", "bf16", "fp16", "int8-dynamic")
    runtime_modules = ("torch",)
    runner_class = TorchRunner

    def package_reason(self) -> str | None:
        from hwfit.hardware import torch_report

        report = torch_report()
        return None if report.installed else report.reason

    def devices(self) -> list[str]:
        from hwfit.hardware import torch_report

        return [d.name for d in torch_report().devices if d.usable]

    def precision_reason(self, model: Model, variant: Variant) -> str | None:
        if not model.has_torch:
            return f"model '{model.name}' is an ONNX file: PyTorch backends need a PyTorch model"
        if variant.precision == "int8-dynamic" and variant.device != "cpu":
            return f"int8-dynamic on {variant.device}: torch.ao dynamic quantization runs on the CPU only"
        if variant.precision == "tf32":
            reason = tf32_reason(variant.device)
            if reason:
                return reason
        if variant.device == "cpu":
            return _cpu_reason(variant.precision)
        return _cuda_reason(variant.device, variant.precision)

    def _load(self, model: Model, variant: Variant) -> Runner:
        return self.runner_class(model, variant)
