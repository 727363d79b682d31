"""From measured points to serving configurations.

A *configuration* (`hwfit.core.Config`) is what one pool runs: a variant family (backend × device ×
precision × knobs) in one *layout* — K replicas of t threads each on one unit of the device — at
any batch size. Its service-time curve is made of the measured points of that family and layout at each
batch size; K replicas × t threads is measured running together (the profiler does that), never
taken as K times one replica.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hwfit.core import Config, Family, Variant, is_usable
from hwfit.store import Measurement


def config_of(variant: Variant) -> tuple[Config, int]:
    """The configuration a variant belongs to, and its batch size."""
    return variant.config, variant.batch_size


@dataclass
class ConfigPoints:
    """The measured points of one configuration, by batch size, and the failures seen."""

    key: Config
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
    """Loss in the model's metric (`Measurement.accuracy_loss`: 1 - top-1 agreement for classifiers,
    1 - mean cosine to fp32 for embeddings)."""
    return measurement.accuracy_loss()


def group_points(measurements: list[Measurement]) -> dict[Config, ConfigPoints]:
    """Measured points grouped by configuration; the newest measurement of a variant wins."""
    groups: dict[Config, ConfigPoints] = {}
    for measurement in measurements:
        if measurement.status == "skipped":
            continue
        key, batch = config_of(measurement.as_variant())
        group = groups.setdefault(key, ConfigPoints(key))
        usable = is_usable(measurement.status) and measurement.latency is not None and measurement.samples_per_s
        if usable:
            group.points[batch] = measurement
            group.failures.pop(batch, None)
        elif batch not in group.points:
            group.failures[batch] = measurement
    for group in groups.values():
        group.drop_beyond_failure()
    return groups


def family_accuracy(groups: dict[Config, ConfigPoints]) -> dict[Family, float]:
    """Accuracy loss per family: precision and backend decide it, not batch size or layout; the worst seen."""
    losses: dict[Family, float] = {}
    for key, group in groups.items():
        for measurement in group.points.values():
            loss = accuracy_loss(measurement)
            if loss is not None:
                losses[key.family] = max(losses.get(key.family, 0.0), loss)
    return losses
