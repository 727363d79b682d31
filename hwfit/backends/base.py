"""The Variant and Runner nouns and the Backend interface every backend file implements."""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np

from hwfit.errors import HwfitError, VariantUnavailable
from hwfit.models import Model

PRECISIONS = ("fp32", "fp16", "bf16", "int8-dynamic", "int8-static")


def usable_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True, order=True)
class Variant:
    """One way to run a model: backend × device × precision × batch size × knobs.

    `threads` is the intra-op thread count (None: the backend's default, all usable cores).
    `knobs` are backend options as sorted (name, value) pairs, e.g. (("opt_level", "all"),).
    """

    backend: str
    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int = 1
    threads: int | None = None
    knobs: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise HwfitError(f"unknown precision '{self.precision}'; expected one of {', '.join(PRECISIONS)}")
        if self.batch_size < 1:
            raise HwfitError(f"batch size must be >= 1, got {self.batch_size}")
        object.__setattr__(self, "knobs", tuple(sorted((str(k), str(v)) for k, v in self.knobs)))

    def knob(self, name: str, default: str | None = None) -> str | None:
        return dict(self.knobs).get(name, default)

    def knob_flag(self, name: str, default: bool) -> bool:
        """A yes/no knob such as `per_channel=false`."""
        return str(self.knob(name, str(default))).lower() in ("1", "true", "yes")

    @property
    def intra_op_threads(self) -> int:
        """The threads a runner uses: the variant's, else every core this process may run on."""
        return self.threads or usable_threads()

    @property
    def key(self) -> str:
        """Short printable key, e.g. `ort/cpu/int8-dynamic/b8/t2/per_channel=false`."""
        parts = [self.backend, self.device, self.precision, f"b{self.batch_size}"]
        if self.threads is not None:
            parts.append(f"t{self.threads}")
        parts += [f"{k}={v}" for k, v in self.knobs]
        return "/".join(parts)

    @classmethod
    def parse(cls, key: str) -> "Variant":
        """Inverse of `key`."""
        parts = key.split("/")
        if len(parts) < 4 or not parts[3].startswith("b"):
            raise HwfitError(f"variant key '{key}' is malformed; expected BACKEND/DEVICE/PRECISION/bN[/tN][/k=v...]")
        threads = None
        knobs = []
        for part in parts[4:]:
            if "=" in part:
                knobs.append(tuple(part.split("=", 1)))
            elif part.startswith("t") and part[1:].isdigit():
                threads = int(part[1:])
            else:
                raise HwfitError(f"variant key '{key}': cannot read '{part}' (expected tN or name=value)")
        return cls(parts[0], parts[1], parts[2], int(parts[3][1:]), threads, tuple(knobs))

    def to_dict(self) -> dict:
        data = asdict(self)
        data["knobs"] = dict(self.knobs)
        data["key"] = self.key
        return data


@dataclass
class LoadStats:
    """What getting a runner ready cost, apart from running it."""

    convert_s: float = 0.0  # model conversion (quantization, fp16 cast); 0 when found in the cache
    convert_cached: bool = False
    load_s: float = 0.0  # session / module creation
    compile_s: float | None = None  # first-call compilation at the variant's shapes (torch.compile)
    notes: list[str] = field(default_factory=list)  # what the backend set, e.g. the precision it verified


class Runner(ABC):
    """A loaded variant: `run(inputs) -> outputs` on numpy arrays.

    GPU runners may also keep inputs and outputs on the device (`supports_device_io`):
    `to_device(inputs)` once, then `run_on_device(handle)` repeatedly, `to_host(result)` at the end.
    """

    supports_device_io = False

    def __init__(self, model: Model, variant: Variant):
        self.model = model
        self.variant = variant
        self.stats = LoadStats()

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check inputs against the model's spec, then run."""
        self.model.inputs.validate(inputs)
        return self.run_unchecked(inputs)

    @abstractmethod
    def run_unchecked(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run without validating: the hot path for timing loops."""

    def to_device(self, inputs: Mapping[str, np.ndarray]) -> Any:
        raise HwfitError(f"{self.variant.key} keeps no device-resident inputs")

    def run_on_device(self, handle: Any) -> Any:
        raise HwfitError(f"{self.variant.key} keeps no device-resident inputs")

    def to_host(self, result: Any) -> dict[str, np.ndarray]:
        raise HwfitError(f"{self.variant.key} keeps no device-resident outputs")

    def synchronize(self) -> None:
        """Wait for queued device work (timing device-resident runs); no-op where runs are synchronous."""

    def device_memory_peak_bytes(self) -> int | None:
        """Peak device memory this runner's framework allocated, where it keeps count."""
        return None

    def close(self) -> None:
        """Release sessions and device memory."""

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Backend(ABC):
    """One execution backend: which precisions and devices it can run, and how to load a variant."""

    name: str = ""
    summary: str = ""
    precisions: tuple[str, ...] = ("fp32",)
    runtime_modules: tuple[str, ...] = ()  # the heavy packages a runner imports

    def preload(self) -> None:
        """Import the runtime now, so that memory measured around a load is the model's, not the import's."""
        import importlib

        for module in self.runtime_modules:
            try:
                importlib.import_module(module)
            except ImportError:
                pass  # unavailable_reason() says so when the variant is loaded

    @abstractmethod
    def devices(self) -> list[str]:
        """Devices this backend can use here, given installed packages and hardware."""

    def package_reason(self) -> str | None:
        """Why the backend cannot run at all here (a package is missing), or None."""
        return None

    def unavailable_reason(self, model: Model, variant: Variant) -> str | None:
        """Why this variant cannot run here, or None. Never silently drop a variant: say why."""
        missing = self.package_reason()
        if missing:
            return missing
        if variant.precision not in self.precisions:
            return f"{variant.precision} is not offered by {self.name} (offers {', '.join(self.precisions)})"
        if variant.device not in self.devices():
            return f"device {variant.device} is not usable by {self.name} here (usable: {', '.join(self.devices()) or 'none'})"
        return self.precision_reason(model, variant)

    def precision_reason(self, model: Model, variant: Variant) -> str | None:
        """Backend-specific precision × device × model checks."""
        return None

    def load(self, model: Model, variant: Variant) -> Runner:
        """Check availability, then build the runner, timing its creation."""
        reason = self.unavailable_reason(model, variant)
        if reason:
            raise VariantUnavailable(f"{variant.key}: {reason}")
        started = time.perf_counter()
        runner = self._load(model, variant)
        runner.stats.load_s = time.perf_counter() - started - runner.stats.convert_s - (runner.stats.compile_s or 0.0)
        return runner

    @abstractmethod
    def _load(self, model: Model, variant: Variant) -> Runner:
        """Build the runner (conversions go through the cache in `hwfit.backends.convert`)."""
