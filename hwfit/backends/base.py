"""The Runner noun (a loaded variant) and the Backend interface every backend file implements."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwfit.core import HwfitError, Variant, VariantUnavailable
from hwfit.models import Model


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
        """Check inputs against the model's spec (`InputSpec.validate`), then run: the library API."""
        self.model.inputs.validate(inputs)
        return self.run_unchecked(inputs)

    @abstractmethod
    def run_unchecked(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run without validating: the hot path for timing loops, and the server's (its dispatcher has
        validated each request once)."""

    def to_device(self, inputs: Mapping[str, np.ndarray]) -> Any:
        raise HwfitError(f"{self.variant.key} keeps no device-resident inputs")

    def run_on_device(self, handle: Any) -> Any:
        raise HwfitError(f"{self.variant.key} keeps no device-resident inputs")

    def to_host(self, result: Any) -> dict[str, np.ndarray]:
        raise HwfitError(f"{self.variant.key} keeps no device-resident outputs")

    def synchronize(self) -> None:  # noqa: B027 - a hook with a do-nothing default, not an abstract method
        """Wait for queued device work (timing device-resident runs); no-op where runs are synchronous."""

    def device_memory_peak_bytes(self) -> int | None:
        """Peak device memory this runner's framework allocated, where it keeps count."""
        return None

    def reset_device_memory_peak(self) -> None:  # noqa: B027 - a hook with a do-nothing default, not an abstract method
        """Start the peak-memory count afresh (from what is allocated now), where the framework keeps one."""

    def close(self) -> None:  # noqa: B027 - a hook with a do-nothing default, not an abstract method
        """Release sessions and device memory."""

    def __enter__(self) -> Runner:
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
            usable = ", ".join(self.devices()) or "none"
            return f"device {variant.device} is not usable by {self.name} here (usable: {usable})"
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
