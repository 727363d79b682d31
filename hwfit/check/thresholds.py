"""What the gate compares and how much change it fails or warns on: the metrics with their default
thresholds, and a YAML file that overrides them for every variant or for variants matching a pattern."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hwfit.check.errors import CheckError
from hwfit.core import direction
from hwfit.store import ROUND_METRICS

DEFAULT_ALPHA = 0.01


@dataclass(frozen=True)
class GateMetric:
    """One compared metric: `fail` and `warn` are the smallest regression that fails or warns
    (a share of the baseline for relative metrics, a difference for absolute ones); a change
    smaller than `floor` (absolute, in the metric's unit) is never flagged."""

    name: str
    label: str
    unit: str
    relative: bool
    fail: float
    warn: float
    floor: float = 0.0
    required: bool = False  # missing on either side makes the variant incomparable
    ignore: bool = False

    @property
    def direction(self) -> str:
        return direction(self.name)

    def describe(self, change: float) -> str:
        """A change as people read it: +4.1% or +0.0123."""
        return f"{change:+.1%}" if self.relative else f"{change:+.4f}"


MiB = 1024 * 1024
# Defaults: fail on a change that matters and that rounds in fresh processes can resolve here
# (bench/results/check_power.md); warn on half of it. Tails (p99) and energy are noisier.
DEFAULT_METRICS: dict[str, GateMetric] = {
    metric.name: metric
    for metric in (
        GateMetric("p50_ms", "p50 latency", "ms", True, fail=0.03, warn=0.015, required=True),
        GateMetric("p99_ms", "p99 latency", "ms", True, fail=0.10, warn=0.05),
        GateMetric("samples_per_s", "throughput", "samples/s", True, fail=0.03, warn=0.015, required=True),
        GateMetric("peak_rss_delta_bytes", "peak memory", "bytes", True, fail=0.10, warn=0.05, floor=16 * MiB),
        GateMetric("device_memory_peak_bytes", "device memory", "bytes", True, fail=0.10, warn=0.05, floor=16 * MiB),
        GateMetric("energy_j_per_sample", "energy", "J/sample", True, fail=0.10, warn=0.05),
        GateMetric("accuracy_loss", "accuracy loss vs fp32", "", False, fail=0.01, warn=0.002),
        GateMetric("task_accuracy", "task accuracy", "", False, fail=0.01, warn=0.005),
    )
}
assert set(DEFAULT_METRICS) == set(ROUND_METRICS), "every round metric has a gate default"


class _MetricOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fail: float | None = Field(None, ge=0, description="smallest regression that fails the check")
    warn: float | None = Field(None, ge=0, description="smallest regression that warns")
    floor: float | None = Field(None, ge=0, description="absolute change never flagged below this")
    ignore: bool = Field(False, description="do not compare this metric")


def _known_metric_names(value: dict) -> dict:
    for name in value:
        if name not in DEFAULT_METRICS:
            raise ValueError(f"unknown metric {name!r}; expected one of {', '.join(DEFAULT_METRICS)}")
    return value


class _ThresholdsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(DEFAULT_ALPHA, gt=0, lt=0.5, description="a change is trusted when p < alpha (one-sided)")
    metrics: dict[str, _MetricOverride] = Field(default_factory=dict)
    variants: dict[str, dict[str, _MetricOverride]] = Field(default_factory=dict)

    @field_validator("metrics")
    @classmethod
    def _metric_names(cls, value):
        return _known_metric_names(value)

    @field_validator("variants")
    @classmethod
    def _variant_metrics(cls, value):
        for overrides in value.values():
            _known_metric_names(overrides)
        return value


@dataclass(frozen=True)
class Thresholds:
    """The defaults, then the file's `metrics`, then each matching `variants` pattern in file order."""

    alpha: float = DEFAULT_ALPHA
    metrics: dict | None = None  # name -> override dict
    variants: tuple[tuple[str, dict], ...] = ()  # (pattern, name -> override dict)
    origin: str = "defaults"

    def for_variant(self, variant_key: str) -> list[GateMetric]:
        resolved = dict(DEFAULT_METRICS)
        layers = [("metrics", self.metrics or {})]
        layers += [
            (f"variants.{pattern}", overrides) for pattern, overrides in self.variants if _matches(pattern, variant_key)
        ]
        for where, overrides in layers:
            for name, override in overrides.items():
                changes = {key: value for key, value in override.items() if value is not None}
                resolved[name] = replace(resolved[name], **changes)
                _check_order(resolved[name], f"{self.origin}: field '{where}.{name}'")
        return [metric for metric in resolved.values() if not metric.ignore]


def _matches(pattern: str, variant_key: str) -> bool:
    return pattern == variant_key or fnmatch.fnmatchcase(variant_key, pattern)


def _check_order(metric: GateMetric, where: str) -> None:
    if metric.warn > metric.fail:
        raise CheckError(f"{where}: warn ({metric.warn:g}) must not exceed fail ({metric.fail:g})")


def load_thresholds(path: str | Path | None) -> Thresholds:
    """Thresholds from a YAML file (or the defaults for None); errors name the file, the field and
    what was expected."""
    if path is None:
        return Thresholds()
    path = Path(path)
    origin = f"thresholds file {path}"
    if not path.is_file():
        raise CheckError(f"{origin} not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise CheckError(f"{origin} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise CheckError(f"{origin} must hold a mapping (alpha, metrics, variants), got {type(data).__name__}")
    try:
        parsed = _ThresholdsFile(**data)
    except ValidationError as error:
        raise CheckError(f"{origin}: " + "; ".join(_problems(error))) from None
    thresholds = Thresholds(
        alpha=parsed.alpha,
        metrics={name: override.model_dump() for name, override in parsed.metrics.items()},
        variants=tuple(
            (pattern, {name: override.model_dump() for name, override in overrides.items()})
            for pattern, overrides in parsed.variants.items()
        ),
        origin=origin,
    )
    thresholds.for_variant("")  # the file-wide layer's warn <= fail, checked now rather than mid-check
    for pattern, _ in thresholds.variants:
        thresholds.for_variant(pattern)
    return thresholds


def _problems(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field; allowed: alpha, metrics, variants; per metric: fail, warn, floor, ignore"
        problems.append(f"field '{field}': {message}")
    return problems
