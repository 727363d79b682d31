"""The report's charts: each function turns shaped data into one chart, or into the sentence that
says why there is none. Captions say how every plotted number was obtained."""

from __future__ import annotations

from dataclasses import dataclass

from hwfit.core import short_provenance
from hwfit.plan import Plan
from hwfit.report import data as shaped
from hwfit.report.svg import Bar, BarChart, Chart, Point, Rule, Series, color
from hwfit.report.text import number, si

HOW_COLORS = {"measured": "#2ca02c", "integrated": "#1f77b4", "estimated": "#ff7f0e"}
VERDICT_STYLE = {  # verdict -> (color, marker)
    "rejected": ("#9a9a9a", "triangle"),
    "feasible": ("#1f77b4", "circle"),
    "chosen": ("#d62728", "star"),
}
_LOG_SPREAD = 50.0  # switch a linear axis to log when its values span more than this factor


@dataclass(frozen=True)
class Panel:
    """A chart with its caption, or no chart and the reason (`empty`)."""

    chart: Chart | BarChart | None
    caption: str = ""
    empty: str = ""


def _wants_log(values: list[float]) -> bool:
    positive = [v for v in values if v and v > 0]
    return bool(positive) and max(positive) / min(positive) > _LOG_SPREAD


# --- 3. latency vs throughput ----------------------------------------------------------------------


def latency_throughput(curves: list[shaped.FamilyCurve], plan: Plan | None) -> Panel:
    if not curves:
        return Panel(
            None,
            empty="no latency curves: no point finished with status ok or unstable "
            "(see the table of failed, skipped and unstable points)",
        )
    series = []
    for index, curve in enumerate(curves):
        series.append(
            Series(
                f"{curve.name} p50",
                tuple(Point(p.samples_per_s, p.p50_ms, _curve_tip(curve, p), f"b{p.batch}") for p in curve.points),
                color(index),
            )
        )
        series.append(
            Series(
                f"{curve.name} p99",
                tuple(Point(p.samples_per_s, p.p99_ms, _curve_tip(curve, p)) for p in curve.points),
                color(index),
                dashed=True,
                marker="square",
                marker_size=3,
            )
        )
    latencies = [p.p50_ms for c in curves for p in c.points] + [p.p99_ms for c in curves for p in c.points]
    rules = ()
    if plan is not None:
        # Drawn only within the data's range: a far-off target would squash the curves.
        rules = (
            Rule(
                "y",
                plan.slo.latency_p99_ms,
                f"SLO p99 {number(plan.slo.latency_p99_ms)} ms (per request)",
                extend=False,
            ),
        )
    chart = Chart(
        "latency-throughput",
        "Latency of one batch vs throughput, per variant family",
        "throughput (samples/s, measured)",
        "latency of one batch (ms, measured)",
        tuple(series),
        x_log=_wants_log([p.samples_per_s for c in curves for p in c.points]),
        y_log=_wants_log(latencies),
        rules=rules,
    )
    caption = (
        "Each point is one batch size (labelled b1, b2, …) of a family; solid: p50, dashed: p99 of the "
        "per-batch latency, measured over the point's timed runs; throughput measured as samples/s. "
        "Unstable points are plotted and listed below."
    )
    if plan is not None:
        caption += (
            " The SLO's p99 (red, drawn when it falls within the plotted range) is per request and includes "
            "queueing, so it bounds these curves from above."
        )
    return Panel(chart, caption)


def _curve_tip(curve: shaped.FamilyCurve, point: shaped.CurvePoint) -> str:
    flag = " [unstable]" if point.status == "unstable" else ""
    return (
        f"{point.variant_key}{flag}: {number(point.samples_per_s)} samples/s, p50 {number(point.p50_ms)} ms, "
        f"p99 {number(point.p99_ms)} ms (measured over {point.count} timed runs)"
    )


# --- 4. roofline ------------------------------------------------------------------------------------


def roofline(points: list[shaped.RooflinePoint], roofs: list[shaped.Roof], ceiling_errors: list[str]) -> Panel:
    if not points:
        return Panel(
            None,
            empty="no roofline: no timed point has both an arithmetic intensity and an achieved "
            "FLOP/s (the model's FLOP or byte count was not known to the profiler)",
        )
    low = min([p.intensity for p in points] + [r.ridge for r in roofs if r.ridge]) / 2
    high = max([p.intensity for p in points] + [r.ridge for r in roofs if r.ridge]) * 2
    several_runs = len({roof.run_id for roof in roofs}) > 1
    series = [_roof_series(roof, low, high, index, several_runs) for index, roof in enumerate(roofs)]
    by_family: dict[str, list[shaped.RooflinePoint]] = {}
    for point in points:
        by_family.setdefault(point.name, []).append(point)
    for index, (name, found) in enumerate(by_family.items()):
        ordered = sorted(found, key=lambda p: p.batch or 0)
        series.append(
            Series(
                name,
                tuple(Point(p.intensity, p.flops_per_s, _roofline_tip(p), _batch_label(p.batch)) for p in ordered),
                color(index),
                line=False,
            )
        )
    chart = Chart(
        "roofline",
        "Roofline: achieved FLOP/s vs arithmetic intensity",
        "arithmetic intensity (FLOP/byte, estimated)",
        "achieved FLOP/s (estimated)",
        tuple(series),
        x_log=True,
        y_log=True,
    )
    caption = (
        "Roofs (grey, dashed): the measured memory-bandwidth slope rising to each dtype's measured matmul "
        "ceiling (microbenchmarks of this run). Points: FLOPs per sample counted from the model graph "
        "(estimated) × measured samples/s; intensity = FLOPs / minimum bytes moved (estimated)."
    )
    if not roofs:
        caption += " No roof drawn: " + ("; ".join(ceiling_errors) or "the run recorded no ceilings") + "."
    return Panel(chart, caption)


def _batch_label(batch: int | None) -> str:
    return f"b{batch}" if batch is not None else ""


def _roof_series(roof: shaped.Roof, low: float, high: float, index: int, several_runs: bool) -> Series:
    run = f"run {roof.run_id} " if several_runs else ""
    label = (
        f"{run}{roof.device} {roof.dtype} roof: {si(roof.peak_flops_per_s, 'FLOP/s')}"
        + (f", {si(roof.bandwidth_bytes_per_s, 'B/s')}" if roof.bandwidth_bytes_per_s else "")
        + " (measured)"
    )
    ridge = roof.ridge
    if ridge is None:
        points = (Point(low, roof.peak_flops_per_s), Point(high, roof.peak_flops_per_s))
    else:
        start = min(low, ridge / 4)
        points = (
            Point(start, roof.bandwidth_bytes_per_s * start),
            Point(ridge, roof.peak_flops_per_s),
            Point(max(high, ridge * 4), roof.peak_flops_per_s),
        )
    grey = ("#555555", "#888888", "#aaaaaa", "#333333")[index % 4]
    return Series(label, points, grey, line=True, marker="none", dashed=True)


def _roofline_tip(point: shaped.RooflinePoint) -> str:
    mfu = f", {point.mfu_vs_measured * 100:.3g}% of the measured ceiling" if point.mfu_vs_measured else ""
    bound = f", {point.bound}-bound" if point.bound else ""
    return (
        f"{point.variant_key}: {si(point.flops_per_s, 'FLOP/s')} at {number(point.intensity)} FLOP/byte"
        f"{mfu}{bound} (estimated FLOPs × measured samples/s)"
    )


# --- 5. Pareto frontier -----------------------------------------------------------------------------


def pareto(plan: Plan | None) -> Panel:
    if plan is None:
        return Panel(None, empty="no Pareto frontier: no plan given (pass --plan plan.yaml, written by `hwfit plan`)")
    if not plan.candidates:
        return Panel(None, empty="no Pareto frontier: the plan lists no candidates")
    view = shaped.pareto_view(plan)
    if not view.plotted:
        return Panel(None, empty=f"no Pareto chart: no candidate has both a p99 and {view.y_field} ({view.why})")
    series = []
    for verdict in ("rejected", "feasible"):
        members = [c for c in view.plotted if c.verdict == verdict]
        if members:
            fill, marker = VERDICT_STYLE[verdict]
            series.append(
                Series(
                    f"{verdict} ({len(members)})",
                    tuple(_candidate_point(c, view) for c in members),
                    fill,
                    line=False,
                    marker=marker,
                )
            )
    if len(view.front) > 1:
        series.append(
            Series(
                "Pareto front",
                tuple(Point(c.p99_ms, getattr(c, view.y_field)) for c in view.front),
                "#2ca02c",
                marker="none",
            )
        )
    if view.chosen:
        fill, marker = VERDICT_STYLE["chosen"]
        series.append(
            Series(
                "chosen plan",
                tuple(_candidate_point(c, view, "chosen") for c in view.chosen),
                fill,
                line=False,
                marker=marker,
                marker_size=5,
            )
        )
    chart = Chart(
        "pareto",
        f"Candidates: {view.y_label} vs p99 latency",
        "p99 latency per request (ms, planned)",
        f"{view.y_label}, planned",
        tuple(series),
        rules=_slo_rules(plan, view.y_field),
    )
    caption = (
        f"Planned figures: the planner's prediction from the measurements ({view.why}). "
        "Green line: the candidates on the Pareto front; red star: the chosen plan."
    )
    if view.unplotted:
        caption += f" {len(view.unplotted)} candidate(s) not plotted (no p99 or {view.y_field}); all are in the table."
    return Panel(chart, caption)


def _candidate_point(candidate, view: shaped.ParetoView, label: str = "") -> Point:
    value = getattr(candidate, view.y_field)
    broke = f"; broke {', '.join(candidate.broke)}" if candidate.broke else ""
    tip = (
        f"{candidate.config} [{candidate.verdict}{', on front' if candidate.on_front else ''}]: "
        f"p99 {number(candidate.p99_ms)} ms, {view.y_field} {number(value)} (planned){broke}"
    )
    return Point(candidate.p99_ms, value, tip, label)


def _slo_rules(plan: Plan, y_field: str) -> tuple[Rule, ...]:
    rules = [Rule("x", plan.slo.latency_p99_ms, f"SLO p99 {number(plan.slo.latency_p99_ms)} ms")]
    limits = {
        "cost_per_million": (plan.slo.max_cost_per_million, "SLO max ${} per million"),
        "j_per_inference": (plan.slo.max_energy_j_per_inference, "SLO max {} J per inference"),
        "capacity_rps": (plan.slo.throughput_rps, "SLO throughput {} requests/s"),
    }
    limit, text = limits.get(y_field, (None, ""))
    if limit:
        rules.append(Rule("y", limit, text.format(number(limit))))
    return tuple(rules)


# --- 6. batch-size sweet spot -----------------------------------------------------------------------


def sweet_spot(curves: list[shaped.FamilyCurve], spots: list[shaped.SweetSpot]) -> Panel:
    if not curves:
        return Panel(None, empty="no batch-size curves: no point finished with status ok or unstable")
    series = []
    for index, curve in enumerate(curves):
        series.append(
            Series(
                curve.name,
                tuple(
                    Point(p.batch, p.samples_per_s, f"{p.variant_key}: {number(p.samples_per_s)} samples/s (measured)")
                    for p in curve.points
                ),
                color(index),
            )
        )
    marks = []
    for spot in spots:
        curve = next((c for c in curves if c.run_id == spot.run_id and c.family == spot.family), None)
        point = next((p for p in curve.points if p.batch == spot.batch), None) if curve else None
        if point is not None:
            marks.append(
                Point(
                    point.batch,
                    point.samples_per_s,
                    f"sweet spot of {spot.name}: batch {spot.batch} ({spot.how}); {spot.stop_reason}",
                    f"sweet spot b{spot.batch}",
                )
            )
    if marks:
        series.append(Series("sweet spot", tuple(marks), "#d62728", line=False, marker="ring", marker_size=5))
    batches = sorted({p.batch for c in curves for p in c.points})
    wide = len(batches) > 1 and max(batches) / min(batches) >= 4
    chart = Chart(
        "sweet-spot",
        "Throughput vs batch size, sweet spot marked",
        "batch size",
        "throughput (samples/s, measured)",
        tuple(series),
        x_log=wide,
        x_ticks=tuple(float(b) for b in batches) if len(batches) <= 12 else (),
    )
    caption = (
        "Measured samples/s per batch size. Red ring: the sweet spot the sweep recorded (the batch with the "
        "best throughput when growth stopped: the next batch gained less than the sweep's threshold, failed, "
        "or passed the latency cap), or the best measured point where it recorded none."
    )
    return Panel(chart, caption)


# --- 7. energy and cost ------------------------------------------------------------------------------


def energy(points: list[tuple[int, object]], multi_run: bool, missing_reasons: list[str]) -> Panel:
    if not points:
        why = "; ".join(missing_reasons) or "no point finished with status ok or unstable"
        return Panel(None, empty=f"no energy figures: {why}")
    bars = []
    for run_id, m in points:
        label = f"run {run_id} · {m.variant_key}" if multi_run else m.variant_key
        how = m.energy_how or "not recorded"
        bars.append(
            Bar(
                label,
                m.energy_j_per_sample,
                HOW_COLORS.get(how, "#7f7f7f"),
                f"{m.variant_key}: {m.energy_j_per_sample:.4g} J/sample ({how}: {m.energy_note or 'no note'})",
                _short_how(how),
            )
        )
    used = sorted({m.energy_how or "not recorded" for _, m in points})
    legend = tuple((how, HOW_COLORS.get(how, "#7f7f7f")) for how in used)
    chart = BarChart("energy", "Energy per sample, per variant", "joules per sample", tuple(bars), legend)
    caption = (
        "Each bar's colour and note say how its energy was obtained: measured (a hardware energy counter), "
        "integrated (power samples over time) or estimated (a power model; its formula is in the table)."
    )
    return Panel(chart, caption)


def _short_how(how: str) -> str:
    return short_provenance(how)


def cost(plan: Plan | None) -> Panel:
    if plan is None:
        return Panel(None, empty="no cost figures: no plan given (cost per million comes from the plan's prices)")
    priced = [c for c in plan.candidates if c.cost_per_million is not None]
    if not priced:
        return Panel(
            None,
            empty="no cost figures: no candidate in the plan has a cost per million (the SLO gives no device prices?)",
        )
    bars = tuple(
        Bar(
            c.config,
            c.cost_per_million,
            VERDICT_STYLE[c.verdict][0],
            f"{c.config} [{c.verdict}]: {c.cost_per_million:.4g} USD per million inferences (planned)",
            c.verdict,
        )
        for c in priced
    )
    present = {c.verdict for c in priced}
    legend = tuple(
        (verdict, VERDICT_STYLE[verdict][0]) for verdict in ("chosen", "feasible", "rejected") if verdict in present
    )
    chart = BarChart(
        "cost", "Cost per million inferences, per candidate", "USD per million inferences (planned)", bars, legend
    )
    caption = (
        "Planned by the planner from the SLO's device prices and each candidate's capacity; "
        "colour is the candidate's verdict."
    )
    return Panel(chart, caption)


# --- 8. accuracy --------------------------------------------------------------------------------------


def accuracy(groups: list[shaped.PrecisionAccuracy]) -> Panel:
    with_loss = [g for g in groups if g.worst_loss is not None]
    if not with_loss:
        return Panel(
            None, empty="no accuracy chart: no point has a cosine or top-1 agreement against the fp32 reference"
        )
    bars = tuple(
        Bar(
            g.precision,
            g.worst_loss,
            color(index),
            f"{g.precision}: worst accuracy loss {g.worst_loss:.3g} over {len(g.rows)} point(s) (measured vs fp32)",
        )
        for index, g in enumerate(with_loss)
    )
    chart = BarChart(
        "accuracy",
        "Accuracy loss vs the fp32 reference, worst variant per precision",
        "accuracy loss: 1 − top-1 agreement, or 1 − mean cosine (measured)",
        bars,
    )
    caption = (
        "Measured on the same inputs against the fp32 reference outputs; each bar is the worst variant of "
        "that precision. Every variant is in the table."
    )
    return Panel(chart, caption)
