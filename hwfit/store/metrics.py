"""The numeric metrics of a Measurement as rows of (name, value, unit, how): the `measurements` table.

Long format, so a new metric is a new row name rather than a schema migration. A row exists only
for a metric that has a value; NaN is stored as SQL NULL (SQLite cannot hold NaN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from hwfit.store._errors import StoreError
from hwfit.store.records import LatencyStats, Measurement

LATENCY_PREFIX = "latency."


@dataclass(frozen=True)
class MetricSpec:
    """One numeric metric: its row name, unit, how it is obtained, and its Python type."""

    name: str
    unit: str
    how: str  # "measured" | "computed" | "counted" | "energy" (then the point's energy_how says which)
    kind: type  # int or float


def _latency_specs() -> list[MetricSpec]:
    specs = []
    for item in fields(LatencyStats):
        unit, kind = ("count", int) if item.name == "count" else ("ms", float)
        specs.append(MetricSpec(LATENCY_PREFIX + item.name, unit, "measured", kind))
    return specs


# Every numeric field of Measurement except `latency` (whose fields come from _latency_specs).
_FIELD_SPECS = [
    MetricSpec("samples_per_s", "samples/s", "measured", float),
    MetricSpec("peak_rss_delta_bytes", "bytes", "measured", int),
    MetricSpec("device_memory_peak_bytes", "bytes", "measured", int),
    MetricSpec("h2d_ms", "ms", "measured", float),
    MetricSpec("compute_ms", "ms", "measured", float),
    MetricSpec("d2h_ms", "ms", "measured", float),
    MetricSpec("flops_per_sample", "FLOP", "counted", float),
    MetricSpec("achieved_flops_per_s", "FLOP/s", "computed", float),
    MetricSpec("mfu_vs_measured", "ratio", "computed", float),
    MetricSpec("mfu_vs_spec", "ratio", "computed", float),
    MetricSpec("arithmetic_intensity", "FLOP/byte", "computed", float),
    MetricSpec("energy_j_per_sample", "J", "energy", float),
    MetricSpec("max_abs_error", "abs", "measured", float),
    MetricSpec("cosine_mean", "ratio", "measured", float),
    MetricSpec("cosine_min", "ratio", "measured", float),
    MetricSpec("top1_agreement", "ratio", "measured", float),
    MetricSpec("task_accuracy", "ratio", "measured", float),
    MetricSpec("load_s", "s", "measured", float),
    MetricSpec("convert_s", "s", "measured", float),
    MetricSpec("compile_s", "s", "measured", float),
    MetricSpec("wall_s", "s", "measured", float),
]
METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in [*_latency_specs(), *_FIELD_SPECS]}

# Unknown metric names read back (written by a newer hwfit) land here in `details`, not lost.
UNKNOWN_METRICS_KEY = "unknown_metrics"


def metric_rows(measurement: Measurement) -> list[tuple[str, float | None, str, str]]:
    """(name, value, unit, how) for each metric the measurement has; values coerced to int/float."""
    rows = []
    for spec in METRICS.values():
        value = _raw_value(measurement, spec.name)
        if value is None:
            continue
        rows.append((spec.name, _coerce(value, spec, measurement.variant_key), spec.unit, _how(spec, measurement)))
    return rows


def apply_rows(values: dict[str, Any], rows: list[tuple[str, float | None]]) -> None:
    """Put (name, value) rows read from the database into Measurement constructor arguments."""
    latency: dict[str, Any] = {}
    for name, stored in rows:
        spec = METRICS.get(name)
        if spec is None:
            values.setdefault("details", {}).setdefault(UNKNOWN_METRICS_KEY, {})[name] = stored
            continue
        value = _decode(stored, spec)
        if name.startswith(LATENCY_PREFIX):
            latency[name[len(LATENCY_PREFIX) :]] = value
        else:
            values[name] = value
    if latency:
        values["latency"] = LatencyStats(**latency)


def _raw_value(measurement: Measurement, name: str) -> Any:
    if name.startswith(LATENCY_PREFIX):
        if measurement.latency is None:
            return None
        return getattr(measurement.latency, name[len(LATENCY_PREFIX) :])
    return getattr(measurement, name)


def _coerce(value: Any, spec: MetricSpec, variant_key: str) -> float | int | None:
    """Plain int/float (numpy scalars included); NaN becomes None, which SQLite stores as NULL."""
    try:
        number = spec.kind(value)
    except (TypeError, ValueError):
        raise StoreError(
            f"measurement {variant_key!r}: {spec.name} is {value!r}; expected a number ({spec.kind.__name__}) or None"
        ) from None
    if isinstance(number, float) and math.isnan(number):
        return None
    return number


def _decode(stored: float | int | None, spec: MetricSpec) -> float | int:
    if stored is None:
        return math.nan
    return spec.kind(stored)


def _how(spec: MetricSpec, measurement: Measurement) -> str:
    if spec.how == "energy":
        return measurement.energy_how or "unknown"
    return spec.how
