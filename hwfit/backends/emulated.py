"""An emulated device: service time follows a given latency-vs-batch curve, for testing routing and
simulation without the hardware. Its outputs are zeros of the right shape; it is always labelled
emulated (device names start with `emulated`)."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from hwfit.backends.base import Backend, Runner
from hwfit.core import BackendError, Variant
from hwfit.models import Model

# Spin for the last stretch: time.sleep overshoots by tens of microseconds to milliseconds.
SPIN_S = 0.0005


def latency_curve_ms(variant: Variant) -> list[tuple[int, float]]:
    """Knob `curve="1:2.0,8:5.5,32:18"` (batch:ms points), or `base_ms` + `per_sample_ms`."""
    curve_text = variant.knob("curve")
    if curve_text:
        try:
            points = sorted((int(b), float(ms)) for b, ms in (p.split(":") for p in curve_text.split(",")))
        except ValueError as error:
            raise BackendError(f"{variant.key}: curve '{curve_text}' is malformed; expected 'BATCH:MS,...'") from error
        return points
    base = float(variant.knob("base_ms", "1.0"))
    per_sample = float(variant.knob("per_sample_ms", "0.5"))
    return [(1, base + per_sample), (1024, base + 1024 * per_sample)]


def service_time_s(curve: list[tuple[int, float]], batch_size: int) -> float:
    """Linear interpolation between the curve's points, extrapolated from the last two beyond them."""
    batches = [b for b, _ in curve]
    millis = [ms for _, ms in curve]
    if len(curve) == 1:
        return millis[0] / 1000.0
    if batch_size > batches[-1]:
        slope = (millis[-1] - millis[-2]) / (batches[-1] - batches[-2])
        return (millis[-1] + slope * (batch_size - batches[-1])) / 1000.0
    return float(np.interp(batch_size, batches, millis)) / 1000.0


class EmulatedRunner(Runner):
    def __init__(self, model: Model, variant: Variant, output_shapes: dict[str, tuple[int, ...]]):
        super().__init__(model, variant)
        self.curve = latency_curve_ms(variant)
        self.output_shapes = output_shapes
        self.stats.notes.append(f"EMULATED device: latency curve {self.curve} ms; outputs are zeros")

    def run_unchecked(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = next(iter(inputs.values())).shape[0]
        deadline = time.perf_counter() + service_time_s(self.curve, batch)
        remaining = deadline - time.perf_counter() - SPIN_S
        if remaining > 0:
            time.sleep(remaining)
        while time.perf_counter() < deadline:
            pass
        return {name: np.zeros((batch,) + shape, dtype=np.float32) for name, shape in self.output_shapes.items()}


class EmulatedBackend(Backend):
    name = "emulated"
    summary = "EMULATED device whose service time follows a given latency-vs-batch curve"
    precisions = ("fp32", "fp16", "bf16", "int8-dynamic", "int8-static")

    def devices(self) -> list[str]:
        return ["emulated"]

    def unavailable_reason(self, model: Model, variant: Variant) -> str | None:
        if not variant.device.startswith("emulated"):
            return f"the emulated backend runs on devices named emulated[:NAME], not {variant.device}"
        return None

    def _load(self, model: Model, variant: Variant) -> Runner:
        return EmulatedRunner(model, variant, _output_shapes(model))


def _output_shapes(model: Model) -> dict[str, tuple[int, ...]]:
    from hwfit.models import output_shapes

    return {name: shape[1:] for name, shape in output_shapes(model, batch_size=1).items()}
