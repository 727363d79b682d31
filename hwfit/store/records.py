"""The store's nouns: a run, the environment it ran in, and what each measured point gave.

Plain dataclasses with exact `to_dict` / `from_dict` round trips; no SQL here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import socket
from dataclasses import dataclass, field
from typing import Any

from hwfit.core import POINT_STATUSES, RUN_STATUSES, Variant
from hwfit.store._errors import StoreError

# The figures one round (one fresh process) of a point gives, as `Measurement.rounds` holds them.
ROUND_METRICS = (
    "p50_ms",
    "p99_ms",
    "samples_per_s",
    "peak_rss_delta_bytes",
    "device_memory_peak_bytes",
    "energy_j_per_sample",
    "accuracy_loss",
    "task_accuracy",
)


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one batch over `count` timed runs, in milliseconds; the CI is that of the median."""

    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    ci95_low_ms: float
    ci95_high_ms: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyStats:
        _reject_unknown(cls, data, "latency")
        return cls(**data)


@dataclass
class Measurement:
    """What profiling one variant gave; or a failure, an unstable timing or a skip, with its reason."""

    variant_key: str  # e.g. "ort/cpu/int8-dynamic/b8/t2"
    variant: dict  # backend, device, precision, batch_size, threads, knobs (dict)
    status: str  # "ok" | "unstable" | "failed" | "skipped"
    reason: str | None = None  # why failed / unstable / skipped
    latency: LatencyStats | None = None
    samples_per_s: float | None = None
    peak_rss_delta_bytes: int | None = None
    device_memory_peak_bytes: int | None = None
    h2d_ms: float | None = None
    compute_ms: float | None = None
    d2h_ms: float | None = None
    flops_per_sample: float | None = None
    achieved_flops_per_s: float | None = None
    mfu_vs_measured: float | None = None  # share of the measured ceiling
    mfu_vs_spec: float | None = None  # share of the spec/computed peak
    arithmetic_intensity: float | None = None
    roofline_bound: str | None = None  # "compute" | "memory"
    energy_j_per_sample: float | None = None
    energy_how: str | None = None  # "measured" | "integrated" | "estimated" | None
    energy_note: str | None = None  # formula if estimated, reason if None
    max_abs_error: float | None = None
    cosine_mean: float | None = None
    cosine_min: float | None = None
    top1_agreement: float | None = None
    task_accuracy: float | None = None
    load_s: float | None = None
    convert_s: float | None = None
    compile_s: float | None = None
    wall_s: float | None = None  # whole point, process start to end
    started_at: str | None = None  # ISO-8601 UTC
    details: dict = field(default_factory=dict)  # anything else: notes, warm-up runs, stop rule outcome
    # One dict per fresh process that measured this point (ROUND_METRICS -> value): what a regression
    # check compares, since most of the noise on a shared machine is between processes, not within one.
    rounds: list[dict[str, float]] = field(default_factory=list)

    def accuracy_loss(self) -> float | None:
        """Loss in the model's metric: 1 - top-1 agreement with fp32 for classifiers, else 1 - mean cosine."""
        for agreement in (self.top1_agreement, self.cosine_mean):
            if agreement is not None and math.isfinite(agreement):
                return max(1.0 - agreement, 0.0)
        return None

    def round_sample(self) -> dict[str, float]:
        """This measurement's figures as one round: the ROUND_METRICS it has (energy only where measured)."""
        latency = self.latency
        values = {
            "p50_ms": latency.p50_ms if latency else None,
            "p99_ms": latency.p99_ms if latency else None,
            "samples_per_s": self.samples_per_s,
            "peak_rss_delta_bytes": self.peak_rss_delta_bytes,
            "device_memory_peak_bytes": self.device_memory_peak_bytes,
            "energy_j_per_sample": self.energy_j_per_sample if self.energy_how in ("measured", "integrated") else None,
            "accuracy_loss": self.accuracy_loss(),
            "task_accuracy": self.task_accuracy,
        }
        return {
            name: float(value) for name, value in values.items() if value is not None and math.isfinite(float(value))
        }

    def as_variant(self) -> Variant:
        """The stored variant as the core noun (raises HwfitError when the stored dict lacks a field)."""
        return Variant.from_dict(self.variant)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["latency"] = self.latency.to_dict() if self.latency is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        _reject_unknown(cls, data, "measurement")
        values = dict(data)
        latency = values.get("latency")
        if latency is not None and not isinstance(latency, LatencyStats):
            values["latency"] = LatencyStats.from_dict(latency)
        values["rounds"] = [_round_from_dict(item, data.get("variant_key", "?")) for item in values.get("rounds") or []]
        return cls(**values)


@dataclass(frozen=True)
class Environment:
    """The software and hardware a run measured on; identical environments share one database row."""

    hwfit_version: str
    hwfit_commit: str | None
    python: str
    numpy: str | None
    onnxruntime: str | None
    torch: str | None
    openvino: str | None
    cuda: str | None
    nvidia_driver: str | None
    cpu_model: str | None
    gpu_names: tuple[str, ...]
    hostname_hash: str  # sha256[:12] of the hostname, never the raw name
    extra: dict = field(default_factory=dict)

    def key(self) -> str:
        """Content hash of every field: the same environment always gives the same key."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def hwfit_label(self) -> str:
        """hwfit's version with its commit (and '+dirty') where known: `0.1.0 (b2cbfde)`."""
        if not self.hwfit_commit:
            return self.hwfit_version
        return f"{self.hwfit_version} ({self.hwfit_commit[:7]}{'+dirty' if self.extra.get('hwfit_dirty') else ''})"

    def software(self) -> list[tuple[str, str | None]]:
        """(name, version) of each piece of software the run measured with, as reports list them."""
        return [
            ("hwfit", self.hwfit_label),
            ("Python", self.python),
            ("numpy", self.numpy),
            ("ONNX Runtime", self.onnxruntime),
            ("PyTorch", self.torch),
            ("OpenVINO", self.openvino),
            ("CUDA", self.cuda),
            ("NVIDIA driver", self.nvidia_driver),
        ]

    def __hash__(self) -> int:  # the generated hash would fail on the `extra` dict
        return hash(self.key())

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["gpu_names"] = list(self.gpu_names)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Environment:
        _reject_unknown(cls, data, "environment")
        values = dict(data)
        values["gpu_names"] = tuple(values.get("gpu_names") or ())
        values["extra"] = dict(values.get("extra") or {})
        return cls(**values)


@dataclass(frozen=True)
class Run:
    """One `hwfit profile` invocation: which model, which sweep, where, and how it ended.

    `status` is "interrupted" also when the database still says "running" but the process that
    wrote the run is gone from this host (killed before it could say so).
    """

    id: int
    created_at: str  # ISO-8601 UTC
    finished_at: str | None
    status: str  # "running" | "complete" | "interrupted" | "failed"
    model_name: str
    model_source: str
    model_hash: str
    sweep_key: str
    args: dict
    environment: Environment
    note: str | None
    point_count: int
    status_counts: dict = field(default_factory=dict)  # point status -> number of points

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["environment"] = self.environment.to_dict()
        return data


def hostname_hash(hostname: str | None = None) -> str:
    """sha256[:12] of the hostname: tells machines apart without storing their names."""
    name = hostname if hostname is not None else socket.gethostname()
    return hashlib.sha256(name.encode()).hexdigest()[:12]


def _round_from_dict(item: Any, variant_key: str) -> dict[str, float]:
    if not isinstance(item, dict):
        raise StoreError(f"measurement {variant_key!r}: a round must be a mapping of metric -> number, got {item!r}")
    try:
        return {str(name): float(value) for name, value in item.items()}
    except (TypeError, ValueError):
        raise StoreError(f"measurement {variant_key!r}: round {item!r} holds a value that is not a number") from None


def check_point_status(status: str, variant_key: str) -> None:
    if status not in POINT_STATUSES:
        raise StoreError(
            f"measurement {variant_key!r} has status {status!r}; expected one of {', '.join(POINT_STATUSES)}"
        )


def check_run_status(status: str) -> None:
    if status not in RUN_STATUSES:
        raise StoreError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")


def _reject_unknown(cls: type, data: dict[str, Any], what: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise StoreError(
            f"{what} has unknown fields {', '.join(unknown)} (written by a newer hwfit?); "
            f"known: {', '.join(sorted(known))}"
        )
