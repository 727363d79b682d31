"""From measured points to serving configurations.

A *configuration* is what one pool runs: a variant family (backend × device × precision ×
knobs) in one *layout* — K replicas of t threads each on one unit of the device — at any batch
size. Its service-time curve is made of the measured points of that family and layout at each
batch size; K replicas × t threads is measured running together (the profiler does that), never
taken as K times one replica.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hwfit.store import Measurement

USABLE = ("ok", "unstable")


@dataclass(frozen=True, order=True)
class Layout:
    """K replicas of t threads each, on one unit of a device (t None: the backend's default)."""

    replicas: int = 1
    threads: int | None = None

    def cores(self, device_cores: int | None) -> int | None:
        """Cores this layout occupies on a CPU of `device_cores` cores (None when unknown)."""
        if device_cores is None:
            return None
        return min(device_cores, self.replicas * (self.threads or device_cores))

    @property
    def label(self) -> str:
        threads = f"t{self.threads}" if self.threads else "t*"
        return f"{self.replicas}x{threads}"


@dataclass(frozen=True, order=True)
class Family:
    """A variant without batch size, threads and replicas: backend × device × precision × knobs."""

    backend: str
    device: str
    precision: str
    knobs: tuple[tuple[str, str], ...] = ()

    @property
    def label(self) -> str:
        knobs = "".join(f"/{k}={v}" for k, v in self.knobs)
        return f"{self.backend}/{self.device}/{self.precision}{knobs}"


@dataclass(frozen=True, order=True)
class ConfigKey:
    family: Family
    layout: Layout

    @property
    def label(self) -> str:
        return f"{self.family.label} {self.layout.label}"

    def variant(self, batch_size: int) -> dict:
        """The variant dict (as the store and the profiler write it) of this config at one batch size."""
        knobs = dict(self.family.knobs)
        if self.layout.replicas > 1:
            knobs["replicas"] = str(self.layout.replicas)
        variant = {
            "backend": self.family.backend,
            "device": self.family.device,
            "precision": self.family.precision,
            "batch_size": int(batch_size),
            "threads": self.layout.threads,
            "knobs": knobs,
        }
        variant["key"] = variant_key(variant)
        return variant


def variant_key(variant: dict) -> str:
    """The same short key as backends' `Variant.key` (plan does not import backends)."""
    parts = [variant["backend"], variant["device"], variant["precision"], f"b{variant['batch_size']}"]
    if variant.get("threads") is not None:
        parts.append(f"t{variant['threads']}")
    parts += [f"{k}={v}" for k, v in sorted((variant.get("knobs") or {}).items())]
    return "/".join(parts)


def config_of(variant: dict) -> tuple[ConfigKey, int]:
    """The configuration a variant dict belongs to, and its batch size."""
    knobs = {str(k): str(v) for k, v in (variant.get("knobs") or {}).items()}
    replicas = int(knobs.pop("replicas", "1"))
    family = Family(variant["backend"], variant["device"], variant["precision"], tuple(sorted(knobs.items())))
    return ConfigKey(family, Layout(replicas, variant.get("threads"))), int(variant["batch_size"])


@dataclass
class ConfigPoints:
    """The measured points of one configuration, by batch size, and the failures seen."""

    key: ConfigKey
    points: dict[int, Measurement] = field(default_factory=dict)
    failures: dict[int, Measurement] = field(default_factory=dict)

    def drop_beyond_failure(self) -> None:
        """A batch that failed (out of memory, say) rules out the larger ones, even if measured before."""
        if self.failures:
            first = min(self.failures)
            self.points = {b: m for b, m in self.points.items() if b < first}

    def service_ms(self) -> dict[int, float]:
        """Batch size -> mean service time of one batch (ms): mean, so that B / s(B) is the throughput."""
        return {batch: m.latency.mean_ms for batch, m in sorted(self.points.items()) if m.latency}

    def jitter_ms(self, batch: int) -> float:
        """p99 - mean of the batch latency at the measured batch nearest `batch` (0 if none)."""
        if not self.points:
            return 0.0
        nearest = min(self.points, key=lambda b: (abs(b - batch), -b))
        latency = self.points[nearest].latency
        return max(latency.p99_ms - latency.mean_ms, 0.0) if latency else 0.0


def accuracy_loss(measurement: Measurement) -> float | None:
    """Loss in the model's metric: 1 - mean cosine to fp32 for embeddings, 1 - top-1 agreement for classifiers."""
    if measurement.top1_agreement is not None:
        return max(1.0 - measurement.top1_agreement, 0.0)
    if measurement.cosine_mean is not None:
        return max(1.0 - measurement.cosine_mean, 0.0)
    return None


def group_points(measurements: list[Measurement]) -> dict[ConfigKey, ConfigPoints]:
    """Measured points grouped by configuration; the newest measurement of a variant wins."""
    groups: dict[ConfigKey, ConfigPoints] = {}
    for measurement in measurements:
        if measurement.status == "skipped":
            continue
        key, batch = config_of(measurement.variant)
        group = groups.setdefault(key, ConfigPoints(key))
        usable = measurement.status in USABLE and measurement.latency is not None and measurement.samples_per_s
        if usable:
            group.points[batch] = measurement
            group.failures.pop(batch, None)
        elif batch not in group.points:
            group.failures[batch] = measurement
    for group in groups.values():
        group.drop_beyond_failure()
    return groups


def family_accuracy(groups: dict[ConfigKey, ConfigPoints]) -> dict[Family, float]:
    """Accuracy loss per family: precision and backend decide it, not batch size or layout; the worst seen."""
    losses: dict[Family, float] = {}
    for key, group in groups.items():
        for measurement in group.points.values():
            loss = accuracy_loss(measurement)
            if loss is not None:
                losses[key.family] = max(losses.get(key.family, 0.0), loss)
    return losses

