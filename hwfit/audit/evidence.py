"""What the results store says about a served configuration: FLOPs per inference, the compute time of
one batch, and the measured factors a better batch or precision would give — each with the run it comes
from, so every step and every piece of advice can name its evidence."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hwfit.audit.waterfall import Factor
from hwfit.core import REPLICAS_KNOB, Variant
from hwfit.store import Measurement, ResultsStore

DEFAULT_MAX_ACCURACY_LOSS = 0.01  # 1 - cosine (embeddings) or top-1 disagreement (classifiers)


@dataclass(frozen=True)
class Point:
    """One stored measurement of the model, read as what the audit needs."""

    run_id: int
    variant: Variant
    samples_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    flops_per_sample: float | None
    accuracy_loss: float | None

    @property
    def label(self) -> str:
        return f"run {self.run_id}: {self.variant.key}"

    @property
    def achieved_flops_per_s(self) -> float | None:
        return self.samples_per_s * self.flops_per_sample if self.flops_per_sample else None


@dataclass(frozen=True)
class Evidence:
    """The store's measurements of one model, and the served configuration they are read against."""

    model: str
    served: Variant  # the pool's variant, its replicas as the `replicas` knob
    points: tuple[Point, ...]  # every usable point of the model on the served device, newest run first
    max_accuracy_loss: float

    @property
    def found(self) -> bool:
        return bool(self.points)

    def flops_per_sample(self) -> tuple[float, str] | None:
        """FLOPs of one inference (counted from the model's graph at profile time), and which point says so."""
        ordered = sorted(self.points, key=lambda p: p.variant.config != self.served.config)
        for point in ordered:
            if point.flops_per_sample:
                return point.flops_per_sample, point.label
        return None

    def family_curve(self, variant: Variant) -> dict[int, Point]:
        """The points of `variant`'s configuration (family x layout) by batch size, newest run winning."""
        curve: dict[int, Point] = {}
        for point in self.points:
            if point.variant.config == variant.config and point.variant.batch_size not in curve:
                curve[point.variant.batch_size] = point
        return curve

    def served_point(self, batch: float) -> Point | None:
        """The served configuration's point at the measured batch nearest `batch` (the mean batch served)."""
        curve = self.family_curve(self.served)
        if not curve:
            return None
        return curve[min(curve, key=lambda b: (abs(b - batch), b))]

    def batch_factor(self, served_batch: float) -> Factor | None:
        """Best measured throughput of the served configuration over its throughput at the served batch."""
        curve = self.family_curve(self.served)
        at = self.served_point(served_batch)
        if at is None:
            return None
        best = max(curve.values(), key=lambda p: p.samples_per_s)
        if best.variant.batch_size == at.variant.batch_size:
            return Factor(1.0, f"batch {at.variant.batch_size}", f"{at.label}: the best batch measured")
        return Factor(
            best.samples_per_s / at.samples_per_s,
            f"batch {best.variant.batch_size}",
            f"run {best.run_id}: {best.samples_per_s:.0f} samples/s at batch {best.variant.batch_size} (p99 "
            f"{_ms(best.p99_ms)}) vs {at.samples_per_s:.0f} at batch {at.variant.batch_size}",
        )

    def admissible(self, point: Point) -> bool:
        """Within the model's accuracy tolerance (fp32 is the reference, always admissible)."""
        if point.variant.precision == "fp32":
            return True
        return point.accuracy_loss is not None and point.accuracy_loss <= self.max_accuracy_loss

    def precision_factor(self) -> tuple[Factor, Point] | None:
        """The best lower precision within tolerance on the same backend and layout: its best throughput over
        the served precision's, at the batch sizes measured for both."""
        served_curve = self.family_curve(self.served)
        if not served_curve:
            return None
        best: tuple[Factor, Point] | None = None
        for precision in sorted({p.variant.precision for p in self.points} - {self.served.precision}):
            other = self.family_curve(replace(self.served, precision=precision))
            common = set(other) & set(served_curve)
            candidates = [other[b] for b in common if self.admissible(other[b])]
            if not candidates:
                continue
            winner = max(candidates, key=lambda p: p.samples_per_s)
            reference = max((served_curve[b] for b in common), key=lambda p: p.samples_per_s)
            factor = winner.samples_per_s / reference.samples_per_s
            if factor > 1.0 and (best is None or factor > best[0].value):
                evidence = (
                    f"run {winner.run_id}: {winner.variant.key} {winner.samples_per_s:.0f} samples/s, accuracy loss "
                    f"{winner.accuracy_loss:.4f} <= {self.max_accuracy_loss}, vs {reference.variant.key} "
                    f"{reference.samples_per_s:.0f}"
                )
                best = (Factor(factor, precision, evidence), winner)
        return best

    def best_achieved(self, dtype: str) -> Point | None:
        """The point that delivered the most FLOP/s in `dtype` (int8 covers int8-dynamic and int8-static)."""
        points = [
            p
            for p in self.points
            if p.achieved_flops_per_s and (p.variant.precision == dtype or p.variant.precision.startswith(dtype + "-"))
        ]
        return max(points, key=lambda p: p.achieved_flops_per_s or 0.0) if points else None

    def best_admissible(self) -> Point | None:
        """The highest-throughput point within tolerance on the served device (any backend, precision, layout)."""
        candidates = [p for p in self.points if self.admissible(p)]
        return max(candidates, key=lambda p: p.samples_per_s) if candidates else None


def served_variant(variant_key: str, replicas: int) -> Variant:
    """The pool's variant with its replica count as the store keys it (`.../replicas=K`, K > 1)."""
    variant = Variant.parse(variant_key).without_replicas()
    if replicas > 1:
        variant = replace(variant, knobs=(*variant.knobs, (REPLICAS_KNOB, str(replicas))))
    return variant


def read_evidence(store: ResultsStore, model: str, served: Variant, max_accuracy_loss: float) -> Evidence:
    """Every usable point of runs of `model` (by name) on the served device, newest run first."""
    points: list[Point] = []
    for run in store.list_runs(model=model, limit=1000):
        for measurement in store.measurements(run.id):
            point = _point(run.id, measurement)
            if point is not None and point.variant.device == served.device:
                points.append(point)
    return Evidence(model, served, tuple(points), max_accuracy_loss)


def _point(run_id: int, measurement: Measurement) -> Point | None:
    if measurement.status not in ("ok", "unstable") or not measurement.samples_per_s:
        return None
    try:
        variant = measurement.as_variant()
    except Exception:  # noqa: BLE001 - a stored variant this version cannot read is left out, not fatal
        return None
    latency = measurement.latency
    return Point(
        run_id,
        variant,
        float(measurement.samples_per_s),
        latency.p50_ms if latency else None,
        latency.p99_ms if latency else None,
        measurement.flops_per_sample,
        measurement.accuracy_loss(),
    )


def _ms(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f} ms"
