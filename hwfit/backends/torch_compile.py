"""PyTorch with torch.compile (Inductor): compiled at the variant's shapes on load, compile time
reported apart from run time and cached on disk by Inductor's FX graph cache."""

from __future__ import annotations

import os
import time
from typing import Any

from hwfit.backends.torch_eager import TorchEagerBackend, TorchRunner
from hwfit.core import Variant, cache_dir
from hwfit.models import Model

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class TorchCompileRunner(TorchRunner):
    def prepare(self, module: Any) -> Any:
        mode = self.variant.knob("mode", "default")
        compiled = self.torch.compile(module, mode=mode, dynamic=False)
        # Compile now, at the shapes this variant runs, so that no timed run pays for it.
        example = self.to_device(self.model.synthetic_inputs(self.variant.batch_size))
        started = time.perf_counter()
        with self.torch.inference_mode():
            compiled(*example)
        self.stats.compile_s = time.perf_counter() - started
        self.stats.notes.append(
            f"torch.compile mode={mode}, first call {self.stats.compile_s:.1f} s "
            f"(Inductor cache: {os.environ.get('TORCHINDUCTOR_CACHE_DIR')})"
        )
        return compiled


class TorchCompileBackend(TorchEagerBackend):
    name = "torch-compile"
    summary = "torch.compile (Inductor), static shapes per batch size; compile time reported apart"
    precisions = ("fp32", "tf32", "bf16", "fp16")
    runner_class = TorchCompileRunner

    def precision_reason(self, model: Model, variant: Variant) -> str | None:
        mode = variant.knob("mode", "default")
        if mode not in COMPILE_MODES:
            return f"torch.compile mode '{mode}' is unknown; expected one of {', '.join(COMPILE_MODES)}"
        if variant.device == "cpu" and not _has_compiler():
            return "torch.compile on cpu needs a C++ compiler (g++ or clang++) on PATH"
        return super().precision_reason(model, variant)

    def _load(self, model: Model, variant: Variant):
        # Inductor keeps compiled graphs here across processes: the second compile is a cache hit.
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir("inductor")))
        # Compile in this process: Inductor's worker pool would compete with the timed runs for the
        # cores, and its processes outlive the point (leaked semaphores at exit).
        os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
        return super()._load(model, variant)


def _has_compiler() -> bool:
    from shutil import which

    return any(which(name) for name in ("g++", "c++", "clang++"))
