"""What the report shows, shaped from the store and a plan: which runs, their families' curves,
roofline points and roofs, problem points, energy, accuracy, and the plan's candidates."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from hwfit.core import HwfitError, curve_key_of, is_usable
from hwfit.plan import Candidate, Plan, PlanError, load_plan
from hwfit.store import Measurement, ResultsStore, Run, StoreError


class ReportError(HwfitError):
    """The report cannot be made: no runs, an unknown run id, or a plan file that cannot be read."""


@dataclass(frozen=True)
class RunData:
    """One profile run as the report needs it: the run, its points, and what the sweep attached."""

    run: Run
    measurements: tuple[Measurement, ...]
    ceilings: dict  # device -> {"matmul_flops": {dtype: flop/s}, "mem_bandwidth": bytes/s} or {"error": ...}
    families: tuple[dict, ...]  # {family, sweet_spot_batch, best_samples_per_s, stop_reason}
    training: tuple[dict, ...] = ()  # a `hwfit train` run's experiments (store.train_experiments)


@dataclass(frozen=True)
class ReportData:
    runs: tuple[RunData, ...]
    plan: Plan | None = None
    plan_source: str | None = None  # the plan file's path, for the header

    @property
    def multi_run(self) -> bool:
        return len(self.runs) > 1

    def all_measurements(self) -> list[tuple[RunData, Measurement]]:
        return [(run, m) for run in self.runs for m in run.measurements]


# --- choosing and loading -------------------------------------------------------------------------


def read_plan(path: str | Path) -> Plan:
    """A plan file, or a ReportError naming the file and what is wrong with it."""
    try:
        return load_plan(path)
    except PlanError as error:
        raise ReportError(f"bad plan file: {error}") from None


def choose_run_ids(store: ResultsStore, run_id: int | None, plan: Plan | None) -> list[int]:
    """The runs to report: the one asked for; else the plan's runs; else the latest run in the store."""
    if run_id is not None:
        return [_existing_run(store, run_id, "")]
    if plan is not None:
        wanted = plan.search.run_ids
        return [_existing_run(store, rid, " (named by the plan's search.run_ids)") for rid in wanted]
    latest = store.list_runs(limit=1)
    if not latest:
        raise ReportError(
            f"no runs in {store.path}: run `hwfit profile MODEL` first, or point --db at another database"
        )
    return [latest[0].id]


def _existing_run(store: ResultsStore, run_id: int, why: str) -> int:
    try:
        store.get_run(run_id)
    except StoreError as error:
        raise ReportError(f"unknown run id {run_id}{why}: {error}") from None
    return run_id


def load_report_data(
    store: ResultsStore, run_ids: list[int], plan: Plan | None = None, plan_source: str | None = None
) -> ReportData:
    runs = []
    for run_id in run_ids:
        try:
            run = store.get_run(run_id)
            measurements = store.measurements(run_id)
            extra = store.run_extra(run_id)
            training = tuple(store.train_experiments(run_id))
        except StoreError as error:
            raise ReportError(f"unknown run id {run_id}: {error}") from None
        ceilings = extra.get("ceilings") if isinstance(extra.get("ceilings"), dict) else {}
        families = tuple(f for f in extra.get("families") or [] if isinstance(f, dict))
        runs.append(RunData(run, tuple(measurements), ceilings, families, training))
    return ReportData(tuple(runs), plan, plan_source)


def plan_mismatches(data: ReportData) -> list[str]:
    """Runs that profiled another model than the plan's: their figures do not describe the plan."""
    if data.plan is None:
        return []
    model = data.plan.model
    return [
        f"the plan is for model {model.name} (hash {model.hash[:12]}) but run {run.run.id} profiled "
        f"{run.run.model_name} (hash {run.run.model_hash[:12]}): its figures do not describe this plan"
        for run in data.runs
        if run.run.model_hash != model.hash
    ]


# --- families and curves ---------------------------------------------------------------------------


def batch_size(measurement: Measurement) -> int | None:
    value = measurement.variant.get("batch_size")
    return value if isinstance(value, int) and value >= 1 else None


def family_of(measurement: Measurement) -> str:
    """The batch curve a point belongs to: its variant key without the batch size (`ort/cpu/fp32/t2`)."""
    return curve_key_of(measurement.variant_key)


@dataclass(frozen=True)
class CurvePoint:
    batch: int
    samples_per_s: float
    p50_ms: float
    p99_ms: float
    status: str
    variant_key: str
    count: int  # timed runs behind the percentiles


@dataclass(frozen=True)
class FamilyCurve:
    """One family's timed points, by batch size; `name` carries the run id when several runs are shown."""

    name: str
    family: str
    run_id: int
    points: tuple[CurvePoint, ...]


def family_curves(data: ReportData) -> list[FamilyCurve]:
    curves: dict[tuple[int, str], list[CurvePoint]] = {}
    for run, m in data.all_measurements():
        batch = batch_size(m)
        if not is_usable(m.status) or m.latency is None or not m.samples_per_s or batch is None:
            continue
        point = CurvePoint(
            batch, m.samples_per_s, m.latency.p50_ms, m.latency.p99_ms, m.status, m.variant_key, m.latency.count
        )
        curves.setdefault((run.run.id, family_of(m)), []).append(point)
    return [
        FamilyCurve(_family_name(data, run_id, family), family, run_id, tuple(sorted(points, key=lambda p: p.batch)))
        for (run_id, family), points in curves.items()
    ]


def _family_name(data: ReportData, run_id: int, family: str) -> str:
    return f"run {run_id} · {family}" if data.multi_run else family


@dataclass(frozen=True)
class SweetSpot:
    name: str
    family: str
    run_id: int
    batch: int | None
    samples_per_s: float | None
    stop_reason: str
    how: str  # "measured" (the sweep's own record) or "derived" (highest samples/s found by this report)


def sweet_spots(data: ReportData, curves: list[FamilyCurve]) -> list[SweetSpot]:
    """The sweep's recorded sweet spot per family; for families it did not record, the best measured point."""
    found: list[SweetSpot] = []
    recorded: set[tuple[int, str]] = set()
    for run in data.runs:
        for entry in run.families:
            family = str(entry.get("family", "?"))
            recorded.add((run.run.id, family))
            found.append(
                SweetSpot(
                    _family_name(data, run.run.id, family),
                    family,
                    run.run.id,
                    entry.get("sweet_spot_batch"),
                    entry.get("best_samples_per_s"),
                    str(entry.get("stop_reason") or ""),
                    "measured",
                )
            )
    for curve in curves:
        if (curve.run_id, curve.family) in recorded:
            continue
        best = max(curve.points, key=lambda p: p.samples_per_s)
        found.append(
            SweetSpot(
                curve.name,
                curve.family,
                curve.run_id,
                best.batch,
                best.samples_per_s,
                "the sweep recorded no sweet spot for this family (run unfinished?); "
                "shown: the batch with the highest measured samples/s",
                "derived",
            )
        )
    return found


# --- roofline --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RooflinePoint:
    name: str  # the family (with run id when several runs)
    run_id: int
    variant_key: str
    batch: int | None
    intensity: float  # FLOP per byte
    flops_per_s: float
    bound: str | None
    mfu_vs_measured: float | None
    status: str


@dataclass(frozen=True)
class Roof:
    """One device's roof for one dtype: the bandwidth slope up to the ridge, then the matmul ceiling."""

    run_id: int
    device: str
    dtype: str
    peak_flops_per_s: float
    bandwidth_bytes_per_s: float | None

    @property
    def ridge(self) -> float | None:
        if not self.bandwidth_bytes_per_s:
            return None
        return self.peak_flops_per_s / self.bandwidth_bytes_per_s


@dataclass(frozen=True)
class CeilingRow:
    run_id: int
    device: str
    matmul_flops: dict  # dtype -> flop/s
    bandwidth_bytes_per_s: float | None
    error: str | None


def roofline_points(data: ReportData) -> list[RooflinePoint]:
    points = []
    for run, m in data.all_measurements():
        if not is_usable(m.status):
            continue
        if not _positive(m.arithmetic_intensity) or not _positive(m.achieved_flops_per_s):
            continue
        points.append(
            RooflinePoint(
                _family_name(data, run.run.id, family_of(m)),
                run.run.id,
                m.variant_key,
                batch_size(m),
                m.arithmetic_intensity,
                m.achieved_flops_per_s,
                m.roofline_bound,
                m.mfu_vs_measured,
                m.status,
            )
        )
    return points


def ceiling_rows(data: ReportData) -> list[CeilingRow]:
    rows = []
    for run in data.runs:
        for device, found in sorted(run.ceilings.items()):
            if not isinstance(found, dict):
                rows.append(CeilingRow(run.run.id, device, {}, None, f"unreadable entry: {found!r}"))
                continue
            listed = found.get("matmul_flops")
            flops = {str(k): float(v) for k, v in listed.items() if _positive(v)} if isinstance(listed, dict) else {}
            bandwidth = found.get("mem_bandwidth")
            rows.append(
                CeilingRow(
                    run.run.id, device, flops, float(bandwidth) if _positive(bandwidth) else None, found.get("error")
                )
            )
    return rows


def roofs(data: ReportData) -> list[Roof]:
    return [
        Roof(row.run_id, row.device, dtype, peak, row.bandwidth_bytes_per_s)
        for row in ceiling_rows(data)
        if row.error is None
        for dtype, peak in sorted(row.matmul_flops.items())
    ]


# --- problems, energy, accuracy -------------------------------------------------------------------


def problem_points(data: ReportData) -> list[tuple[int, Measurement]]:
    """Failed, skipped and unstable points, with the run they belong to."""
    return [(run.run.id, m) for run, m in data.all_measurements() if m.status != "ok"]


def energy_points(data: ReportData) -> list[tuple[int, Measurement]]:
    return [
        (run.run.id, m)
        for run, m in data.all_measurements()
        if is_usable(m.status) and m.energy_j_per_sample is not None and math.isfinite(m.energy_j_per_sample)
    ]


def missing_energy_reasons(data: ReportData) -> list[str]:
    """Why timed points have no energy figure, each distinct reason once."""
    reasons = []
    for _, m in data.all_measurements():
        if is_usable(m.status) and m.energy_j_per_sample is None:
            reason = m.energy_note or "the profiler recorded no reason"
            if reason not in reasons:
                reasons.append(reason)
    return reasons


def accuracy_loss(measurement: Measurement) -> float | None:
    """1 - top-1 agreement for classifiers, else 1 - mean cosine to the fp32 outputs (the SLO's metric)."""
    return measurement.accuracy_loss()


def has_accuracy(measurement: Measurement) -> bool:
    return any(v is not None for v in (measurement.cosine_mean, measurement.top1_agreement, measurement.task_accuracy))


@dataclass(frozen=True)
class PrecisionAccuracy:
    precision: str
    rows: tuple[tuple[int, Measurement], ...]

    @property
    def worst_loss(self) -> float | None:
        losses = [loss for _, m in self.rows if (loss := accuracy_loss(m)) is not None]
        return max(losses) if losses else None


def accuracy_by_precision(data: ReportData) -> list[PrecisionAccuracy]:
    groups: dict[str, list[tuple[int, Measurement]]] = {}
    for run, m in data.all_measurements():
        if is_usable(m.status) and has_accuracy(m):
            groups.setdefault(str(m.variant.get("precision", "?")), []).append((run.run.id, m))
    return [PrecisionAccuracy(p, tuple(rows)) for p, rows in sorted(groups.items())]


def energy_cost_per_million(j_per_sample: float, price_per_kwh: float) -> float:
    """Electricity cost of a million inferences: J/sample x 1e6 / 3.6e6 J per kWh x price."""
    return j_per_sample * 1e6 / 3.6e6 * price_per_kwh


# --- plan candidates -------------------------------------------------------------------------------

# The SLO objective -> (Candidate field, axis label) plotted against p99.
OBJECTIVE_AXES = {
    "cost": ("cost_per_million", "cost per million inferences (USD)"),
    "energy": ("j_per_inference", "energy per inference (J)"),
    "throughput": ("capacity_rps", "capacity (requests/s)"),
    "latency": ("capacity_rps", "capacity (requests/s)"),
}


@dataclass(frozen=True)
class ParetoView:
    """The candidates to plot against p99: which field is the y axis and why, and who is left out."""

    y_field: str
    y_label: str
    why: str
    plotted: tuple[Candidate, ...]
    unplotted: tuple[Candidate, ...] = field(default=())

    @property
    def front(self) -> list[Candidate]:
        return sorted((c for c in self.plotted if c.on_front), key=lambda c: c.p99_ms)

    @property
    def chosen(self) -> list[Candidate]:
        return [c for c in self.plotted if c.verdict == "chosen"]


def pareto_view(plan: Plan) -> ParetoView:
    """The objective's figure against p99 when at least two candidates have both; else capacity."""
    y_field, y_label = OBJECTIVE_AXES[plan.slo.objective]
    why = f"the SLO's objective is {plan.slo.objective}"
    if y_field != "capacity_rps" and len(_with_values(plan.candidates, y_field)) < 2:
        why = (
            f"the SLO's objective is {plan.slo.objective}, but fewer than two candidates have both "
            f"p99 and {y_field}; capacity is shown instead"
        )
        y_field, y_label = OBJECTIVE_AXES["throughput"]
    plotted = tuple(c for c in plan.candidates if _plottable(c, y_field))
    unplotted = tuple(c for c in plan.candidates if not _plottable(c, y_field))
    return ParetoView(y_field, y_label, why, plotted, unplotted)


def _with_values(candidates: list[Candidate], y_field: str) -> list[Candidate]:
    return [c for c in candidates if _plottable(c, y_field)]


def _plottable(candidate: Candidate, y_field: str) -> bool:
    return _positive(candidate.p99_ms) and _finite(getattr(candidate, y_field))


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
