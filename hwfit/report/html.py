"""Page assembly: the report's sections, tables, inline CSS and the small inline script that
checks every chart rendered (and shows tooltips). One self-contained HTML page, nothing fetched."""

from __future__ import annotations

from datetime import datetime, timezone

from hwfit.core import PROVENANCE, is_usable
from hwfit.plan import Plan
from hwfit.report import data as shaped
from hwfit.report import figures
from hwfit.report.svg import BarChart, render_bar_chart, render_chart
from hwfit.report.text import Markup, esc, how_badge, join, number, percent, si, slug
from hwfit.store import Measurement

SECTIONS = (
    ("summary", "1. Summary"),
    ("devices", "2. Devices and ceilings"),
    ("latency", "3. Latency vs throughput"),
    ("problems", "Failed, skipped and unstable points"),
    ("roofline", "4. Roofline"),
    ("pareto", "5. Pareto frontier and the chosen plan"),
    ("sweet-spot", "6. Batch-size sweet spot"),
    ("energy-cost", "7. Energy and cost per million inferences"),
    ("accuracy", "8. Accuracy per precision"),
    ("environment", "9. Environment"),
)


def standalone_page(title: str, sections: list[str], footer: str) -> str:
    """A one-page document around `sections` (already built markup): the style, the chart check, a footer
    saying when it was made, the tooltip and the script. For the pages of a simulation and an audit."""
    made = esc(datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>",
            f"<header><h1>{esc(title)}</h1>"
            '<p id="render-check" class="render-check" data-charts-total="0" data-charts-rendered="0">'
            "chart check: the page's script did not run</p></header><main>",
            *sections,
            f"</main><footer>Made by hwfit on {made}. {esc(footer)}</footer>",
            f'<div id="tooltip" class="tooltip" hidden></div><script>{SCRIPT}</script>',
            "</body></html>",
        ]
    )


def render_page(report: shaped.ReportData) -> str:
    """The whole report as one HTML document."""
    body = [
        _summary(report),
        _devices(report),
        _latency(report),
        _problems(report),
        _roofline(report),
        _pareto(report),
        _sweet_spot(report),
        _energy_cost(report),
        _accuracy(report),
        _environment(report),
        _training(report),
    ]
    title = f"hwfit report — {_model_name(report)}"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(title)}</title>",
            f"<style>{STYLE}</style></head><body>",
            f"<header><h1>{esc(title)}</h1>{_nav()}"
            '<p id="render-check" class="render-check" data-charts-total="0" data-charts-rendered="0">'
            "chart check: the page's script did not run</p></header>",
            "<main>",
            *body,
            "</main>",
            f"<footer>Made by hwfit on {esc(_now())}. Self-contained: no network access needed. "
            f"Provenance labels: {join([how_badge(how) for how in PROVENANCE], ' ')}</footer>",
            f'<div id="tooltip" class="tooltip" hidden></div><script>{SCRIPT}</script>',
            "</body></html>",
        ]
    )


# --- building blocks -------------------------------------------------------------------------------


def _section(section_id: str, *content: object) -> Markup:
    heading = dict(SECTIONS)[section_id]
    inside = "".join(esc(c) for c in content)
    return Markup(f'<section id="{section_id}"><h2>{esc(heading)}</h2>{inside}</section>')


def _nav() -> Markup:
    links = " ".join(f'<a href="#{section_id}">{esc(name)}</a>' for section_id, name in SECTIONS)
    return Markup(f"<nav>{links}</nav>")


def _table(headers: list[object], rows: list[list[object]], css: str = "", numeric: tuple[int, ...] = ()) -> Markup:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{esc(cell)}</td>' if index in numeric else f"<td>{esc(cell)}</td>"
            for index, cell in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return Markup(
        f'<div class="table-wrap"><table class="{esc(css)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _header(text: str, how: str, detail: str | None = None) -> Markup:
    """A column header that says how the column's numbers were obtained."""
    return Markup(f"{esc(text)} {how_badge(how, detail)}")


def _empty(reason: str) -> Markup:
    return Markup(f'<p class="empty">{esc(reason)}</p>')


def _paragraph(text: object, css: str = "") -> Markup:
    attribute = f' class="{esc(css)}"' if css else ""
    return Markup(f"<p{attribute}>{esc(text)}</p>")


def _figure(figure: figures.Panel) -> Markup:
    if figure.chart is None:
        return _empty(figure.empty)
    svg = render_bar_chart(figure.chart) if isinstance(figure.chart, BarChart) else render_chart(figure.chart)
    return Markup(f'<figure class="chart-box">{svg}<figcaption>{esc(figure.caption)}</figcaption></figure>')


def _status(status: str) -> Markup:
    return Markup(f'<span class="status status-{slug(status)}">{esc(status)}</span>')


def _model_name(report: shaped.ReportData) -> str:
    names = sorted({run.run.model_name for run in report.runs})
    if names:
        return ", ".join(names)
    return report.plan.model.name if report.plan is not None else "no model"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _run_label(report: shaped.ReportData, run_id: int, text: str) -> str:
    return f"run {run_id} · {text}" if report.multi_run else text


# --- 1. summary -------------------------------------------------------------------------------------


def _summary(report: shaped.ReportData) -> Markup:
    parts: list[object] = []
    if report.runs:
        rows = []
        for run_data in report.runs:
            run = run_data.run
            counts = ", ".join(f"{count} {status}" for status, count in sorted(run.status_counts.items()))
            rows.append(
                [
                    str(run.id),
                    run.model_name,
                    f"{run.model_source} (hash {run.model_hash[:12]})",
                    f"{run.created_at}" + (f" → {run.finished_at}" if run.finished_at else ""),
                    _status(run.status),
                    counts or "no points",
                    run.note or "",
                ]
            )
        parts.append(_table(["run", "model", "source", "date (UTC)", "status", "points", "note"], rows))
    else:
        parts.append(_empty("no profile runs in this report: the plan names none (its search.run_ids is empty)"))
    if report.plan is not None:
        parts += [_paragraph(warning, "warning") for warning in shaped.plan_mismatches(report)]
        parts.append(_plan_summary(report.plan, report.plan_source))
    else:
        parts.append(
            _paragraph(
                "No plan given: pass --plan plan.yaml (written by `hwfit plan`) to add the "
                "chosen deployment, its candidates and their costs.",
                "note",
            )
        )
    return _section("summary", *parts)


def _plan_summary(plan: Plan, source: str | None) -> Markup:
    verdict = "feasible" if plan.feasible else "infeasible"
    parts: list[object] = [
        Markup(f"<h3>Plan {esc(source or '')} — {_status(verdict)}</h3>"),
        Markup(f'<p class="answer">{esc(plan.answer or "(the plan has no answer paragraph)")}</p>'),
        _paragraph(
            f"Model {plan.model.name} ({plan.model.source}, hash {plan.model.hash[:12]}); plan created "
            f"{plan.created_at}; SLO: p99 ≤ {number(plan.slo.latency_p99_ms)} ms at "
            f"{number(plan.slo.throughput_rps)} requests/s, objective {plan.slo.objective}; search: "
            f"{plan.search.measured} of {plan.search.grid_size} grid points measured, "
            f"{plan.search.reused} reused ({plan.search.method or 'method not recorded'}).",
            "note",
        ),
    ]
    if plan.infeasible is not None:
        nearest = ", ".join(f"{k} {number(v)}" for k, v in plan.infeasible.nearest.items())
        parts.append(
            _paragraph(
                f"Infeasible: {plan.infeasible.message}" + (f" Nearest reachable: {nearest}." if nearest else ""),
                "warning",
            )
        )
    if plan.pools:
        rows = [
            [
                p.name,
                p.role,
                p.variant,
                f"{p.devices} × {p.replicas_per_device}",
                p.max_batch_size,
                number(p.max_queue_delay_ms),
                number(p.expected.rate_rps),
                number(p.expected.p99_ms),
                number(p.expected.capacity_rps),
                p.expected.how or "not recorded",
            ]
            for p in plan.pools
        ]
        headers = [
            "pool",
            "role",
            "variant",
            "devices × replicas",
            "max batch",
            "max queue delay ms",
            _header("rate rps", "planned"),
            _header("p99 ms", "planned"),
            _header("capacity rps", "planned"),
            "how the latency was obtained",
        ]
        parts.append(_table(headers, rows, numeric=(4, 5, 6, 7, 8)))
        if plan.fallback:
            parts.append(_paragraph(f"Fallback order: {' → '.join(plan.fallback)}.", "note"))
    if plan.assumptions:
        parts.append(
            Markup('<ul class="assumptions">' + "".join(f"<li>{esc(a)}</li>" for a in plan.assumptions) + "</ul>")
        )
    return Markup("".join(esc(p) for p in parts))


# --- 2. devices -------------------------------------------------------------------------------------


def _devices(report: shaped.ReportData) -> Markup:
    rows = shaped.ceiling_rows(report)
    parts: list[object] = []
    if rows:
        table_rows = []
        for row in rows:
            flops = ", ".join(f"{dtype} {si(value, 'FLOP/s')}" for dtype, value in sorted(row.matmul_flops.items()))
            ridge = [
                f"{dtype} {number(value / row.bandwidth_bytes_per_s)}"
                for dtype, value in sorted(row.matmul_flops.items())
                if row.bandwidth_bytes_per_s
            ]
            table_rows.append(
                [
                    str(row.run_id),
                    row.device,
                    flops or "—",
                    si(row.bandwidth_bytes_per_s, "B/s"),
                    ", ".join(ridge) or "—",
                    row.error or "",
                ]
            )
        headers = [
            "run",
            "device",
            _header("matmul ceiling per dtype", "measured", "matmul microbenchmark of the run"),
            _header("memory bandwidth", "measured", "bandwidth microbenchmark of the run"),
            _header("ridge FLOP/byte", "derived", "matmul ceiling / bandwidth"),
            "error",
        ]
        parts.append(_table(headers, table_rows))
    elif report.runs:
        parts.append(
            _empty(
                "no ceilings: the runs recorded none (interrupted before the microbenchmarks, or only emulated devices)"
            )
        )
    else:
        parts.append(_empty("no ceilings: no profile run in this report"))
    parts.append(_environment_brief(report))
    return _section("devices", *parts)


def _environment_brief(report: shaped.ReportData) -> Markup:
    if not report.runs:
        return Markup("")
    rows = []
    for environment, run_ids in _environments(report):
        versions = ", ".join(f"{name} {value}" for name, value in environment.software() if value)
        rows.append(
            [
                ", ".join(str(i) for i in run_ids),
                environment.cpu_model or "unknown CPU",
                ", ".join(environment.gpu_names) or "none",
                versions,
            ]
        )
    return _table(["runs", "CPU", "GPUs", "versions"], rows)


# --- 3. latency, and the problem points -------------------------------------------------------------


def _latency(report: shaped.ReportData) -> Markup:
    curves = shaped.family_curves(report)
    parts: list[object] = [_figure(figures.latency_throughput(curves, report.plan))]
    rows = []
    for run, m in report.all_measurements():
        if not is_usable(m.status) or m.latency is None:
            continue
        half_ci = (m.latency.ci95_high_ms - m.latency.ci95_low_ms) / 2
        rows.append(
            [
                _run_label(report, run.run.id, m.variant_key),
                _status(m.status),
                number(m.latency.p50_ms),
                number(half_ci),
                number(m.latency.p99_ms),
                number(m.samples_per_s),
                m.latency.count,
                si(m.peak_rss_delta_bytes, "B") if m.peak_rss_delta_bytes is not None else "—",
            ]
        )
    if rows:
        headers = [
            "variant",
            "status",
            _header("p50 ms", "measured"),
            _header("± ms (95% CI of p50, half)", "measured"),
            _header("p99 ms", "measured"),
            _header("samples/s", "measured"),
            "timed runs",
            _header("peak RSS growth", "measured"),
        ]
        parts.append(_table(headers, rows, numeric=(2, 3, 4, 5, 6, 7)))
    return _section("latency", *parts)


def _problems(report: shaped.ReportData) -> Markup:
    found = shaped.problem_points(report)
    if not found:
        reason = "no profile run in this report" if not report.runs else "every point finished ok"
        return _section("problems", _empty(f"none: {reason}"))
    rows = [
        [
            _run_label(report, run_id, m.variant_key),
            _status(m.status),
            m.reason or "no reason recorded",
            number(m.wall_s),
        ]
        for run_id, m in found
    ]
    return _section(
        "problems", _table(["variant", "status", "reason", _header("wall s", "measured")], rows, numeric=(3,))
    )


# --- 4. roofline ------------------------------------------------------------------------------------


def _roofline(report: shaped.ReportData) -> Markup:
    points = shaped.roofline_points(report)
    errors = [f"{row.device}: {row.error}" for row in shaped.ceiling_rows(report) if row.error]
    parts: list[object] = [_figure(figures.roofline(points, shaped.roofs(report), errors))]
    by_key = {m.variant_key: m for _, m in report.all_measurements()}
    rows = []
    for point in points:
        m = by_key.get(point.variant_key)
        rows.append(
            [
                _run_label(report, point.run_id, point.variant_key),
                number(point.intensity),
                si(point.flops_per_s, "FLOP/s"),
                percent(m.mfu_vs_measured) if m else "—",
                percent(m.mfu_vs_spec) if m else "—",
                point.bound or "—",
            ]
        )
    if rows:
        headers = [
            "variant",
            _header("FLOP/byte", "estimated", "FLOPs per sample × batch / minimum bytes moved"),
            _header("achieved", "estimated", "FLOPs per sample (graph count) × measured samples/s"),
            _header("MFU of measured ceiling", "estimated"),
            _header("MFU of spec peak", "estimated", "achieved / the spec catalog's peak"),
            "bound",
        ]
        parts.append(_table(headers, rows, numeric=(1, 2, 3, 4)))
    return _section("roofline", *parts)


# --- 5. Pareto --------------------------------------------------------------------------------------


def _pareto(report: shaped.ReportData) -> Markup:
    plan = report.plan
    parts: list[object] = [_figure(figures.pareto(plan))]
    if plan is not None and plan.candidates:
        rows = [
            [
                c.config,
                c.device,
                f"{c.devices} × {c.replicas_per_device}",
                c.max_batch_size if c.max_batch_size is not None else "—",
                number(c.max_queue_delay_ms),
                number(c.p99_ms),
                number(c.capacity_rps),
                number(c.cost_per_million),
                number(c.j_per_inference),
                number(c.accuracy_loss),
                number(c.objective_value),
                _status(c.verdict),
                "yes" if c.on_front else "no",
                ", ".join(c.broke) or "—",
                c.why or "",
            ]
            for c in plan.candidates
        ]
        headers = [
            "candidate",
            "device",
            "devices × replicas",
            "max batch",
            "queue delay ms",
            _header("p99 ms", "planned"),
            _header("capacity rps", "planned"),
            _header("$/1M", "planned"),
            _header("J/inference", "planned"),
            _header("accuracy loss", "measured"),
            _header(f"objective ({plan.slo.objective})", "planned"),
            "verdict",
            "on front",
            "constraint broken",
            "why",
        ]
        parts.append(_table(headers, rows, numeric=(3, 4, 5, 6, 7, 8, 9, 10)))
    return _section("pareto", *parts)


# --- 6. sweet spot -----------------------------------------------------------------------------------


def _sweet_spot(report: shaped.ReportData) -> Markup:
    curves = shaped.family_curves(report)
    spots = shaped.sweet_spots(report, curves)
    parts: list[object] = [_figure(figures.sweet_spot(curves, spots))]
    if spots:
        rows = [
            [
                s.name,
                s.batch if s.batch is not None else "—",
                number(s.samples_per_s),
                how_badge(s.how) if s.batch is not None else "nothing measured",
                s.stop_reason,
            ]
            for s in spots
        ]
        parts.append(
            _table(
                ["family", "sweet-spot batch", _header("best samples/s", "measured"), "how", "why growth stopped"],
                rows,
                numeric=(1, 2),
            )
        )
    return _section("sweet-spot", *parts)


# --- 7. energy and cost ------------------------------------------------------------------------------


def _energy_cost(report: shaped.ReportData) -> Markup:
    points = shaped.energy_points(report)
    parts: list[object] = [
        Markup("<h3>Energy per sample</h3>"),
        _figure(figures.energy(points, report.multi_run, shaped.missing_energy_reasons(report))),
    ]
    if points:
        parts.append(_energy_table(report, points))
    parts += [Markup("<h3>Cost per million inferences</h3>"), _figure(figures.cost(report.plan))]
    return _section("energy-cost", *parts)


def _energy_table(report: shaped.ReportData, points: list[tuple[int, Measurement]]) -> Markup:
    price = report.plan.slo.price_per_kwh if report.plan is not None else None
    rows = []
    for run_id, m in points:
        value = Markup(f"{esc(f'{m.energy_j_per_sample:.4g}')} {how_badge(m.energy_how, m.energy_note)}")
        row = [_run_label(report, run_id, m.variant_key), value, m.energy_note or "—"]
        if price is not None:
            row.insert(2, f"{shaped.energy_cost_per_million(m.energy_j_per_sample, price):.3g}")
        rows.append(row)
    headers: list[object] = ["variant", "J/sample (how obtained)", "formula or source"]
    if price is not None:
        headers.insert(
            2,
            _header(
                f"electricity $/1M at ${price:g}/kWh",
                "derived",
                "J/sample × 1e6 / 3.6e6 J per kWh × the SLO's price_per_kwh",
            ),
        )
    return _table(headers, rows, css="energy", numeric=(1, 2) if price is not None else (1,))


# --- 8. accuracy --------------------------------------------------------------------------------------


def _accuracy(report: shaped.ReportData) -> Markup:
    groups = shaped.accuracy_by_precision(report)
    if not groups:
        why = (
            "no profile run in this report"
            if not report.runs
            else "no timed point recorded a cosine, top-1 agreement or task accuracy against the fp32 reference"
        )
        return _section("accuracy", _empty(f"no accuracy figures: {why}"))
    rows = []
    for group in groups:
        for run_id, m in group.rows:
            rows.append(
                [
                    group.precision,
                    _run_label(report, run_id, m.variant_key),
                    _fixed(m.cosine_mean, 6),
                    _fixed(m.cosine_min, 6),
                    percent(m.top1_agreement),
                    percent(m.task_accuracy),
                    number(m.max_abs_error),
                    number(shaped.accuracy_loss(m)),
                ]
            )
    headers = [
        "precision",
        "variant",
        _header("cosine mean", "measured"),
        _header("cosine min", "measured"),
        _header("top-1 agreement", "measured"),
        _header("task accuracy", "measured"),
        _header("max |error|", "measured"),
        _header("accuracy loss", "derived", "1 − top-1, else 1 − cosine mean"),
    ]
    return _section("accuracy", _figure(figures.accuracy(groups)), _table(headers, rows, numeric=(2, 3, 4, 5, 6, 7)))


def _fixed(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


# --- 9. environment -----------------------------------------------------------------------------------


def _environments(report: shaped.ReportData) -> list[tuple[object, list[int]]]:
    """Each distinct environment once, with the runs measured in it."""
    found: dict[str, tuple[object, list[int]]] = {}
    for run in report.runs:
        environment = run.run.environment
        found.setdefault(environment.key(), (environment, []))[1].append(run.run.id)
    return list(found.values())


def _environment(report: shaped.ReportData) -> Markup:
    if not report.runs:
        return _section("environment", _empty("no environment: no profile run in this report"))
    tables = []
    for environment, run_ids in _environments(report):
        data = environment.to_dict()
        extra = data.pop("extra") or {}
        rows = [[name, _environment_value(value)] for name, value in data.items()]
        rows += [[f"extra.{name}", _environment_value(value)] for name, value in sorted(extra.items())]
        tables.append(Markup(f"<h3>Runs {esc(', '.join(str(i) for i in run_ids))}</h3>"))
        tables.append(_table(["field", "value"], rows, css="environment"))
    return _section("environment", *tables)


def _environment_value(value: object) -> str:
    if value is None or value == [] or value == ():
        return "—"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


# --- style and script ---------------------------------------------------------------------------------

STYLE = """
:root { --ink: #1d2330; --muted: #5b6577; --line: #d9dee7; --bg: #f7f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: var(--ink); background: var(--bg); }
header { background: #1d2330; color: #fff; padding: 16px 28px 10px; }
header h1 { margin: 0 0 8px; font-size: 22px; }
nav a { color: #cfe0ff; margin-right: 14px; font-size: 13px; text-decoration: none; white-space: nowrap; }
main { padding: 8px 28px 28px; max-width: 1240px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 6px 18px 14px; margin: 16px 0; }
h2 { font-size: 18px; margin: 10px 0; } h3 { font-size: 15px; margin: 14px 0 6px; }
.table-wrap { overflow-x: auto; margin: 8px 0; }
table { border-collapse: collapse; font-size: 12.5px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eef1f6; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.empty { color: var(--muted); font-style: italic; border-left: 3px solid #e0b84c; padding-left: 8px; }
.note { color: var(--muted); } .warning { color: #9c2a1f; }
.answer { font-size: 15px; background: #f1f6ff; border-left: 4px solid #3a6fd8; padding: 8px 12px; }
.how { display: inline-block; font-size: 10.5px; font-weight: 600; padding: 0 5px; border-radius: 8px;
       background: #e8e8e8; color: #444; cursor: help; white-space: nowrap; }
.how-measured { background: #daf2da; color: #1d6b1d; } .how-integrated { background: #dbe9fa; color: #1f4f8a; }
.how-estimated { background: #ffe8cc; color: #8a4b00; } .how-spec { background: #eadcf7; color: #5a2d82; }
.how-planned { background: #fbe0e0; color: #8a1f1f; } .how-derived { background: #e6eef0; color: #31545c; }
.status { font-weight: 600; } .status-ok, .status-complete, .status-chosen, .status-feasible { color: #1d7a1d; }
.status-unstable, .status-interrupted { color: #9a6a00; }
.status-failed, .status-rejected, .status-infeasible { color: #b3261e; }
.status-skipped { color: #777; }
figure.chart-box { margin: 8px 0 14px; } figcaption { color: var(--muted); font-size: 12.5px; max-width: 900px; }
svg.chart { max-width: 100%; height: auto; background: #fff; }
svg .chart-title { font-size: 14px; font-weight: 600; fill: var(--ink); }
svg .plot-area { fill: #fbfcfe; stroke: #b9c0cc; }
svg .grid { stroke: #e6e9ef; } svg .tick { font-size: 11px; fill: var(--muted); }
svg .axis-label { font-size: 12px; fill: var(--ink); }
svg .series-line { fill: none; stroke-width: 2; } svg .legend-line { stroke-width: 2; }
svg .rule { stroke-width: 1.5; stroke-dasharray: 3 3; } svg .rule-label { font-size: 11px; }
svg .point-label { font-size: 10px; fill: #444; }
svg .legend-text, svg .bar-label, svg .bar-value { font-size: 11.5px; fill: var(--ink); }
svg .mark { cursor: pointer; } svg .mark:hover { stroke: #000; stroke-width: 1.5; }
.tooltip { position: fixed; z-index: 10; max-width: 520px; background: #1d2330; color: #fff; font-size: 12px;
           padding: 6px 8px; border-radius: 4px; pointer-events: none; }
.render-check { font-size: 12px; color: #cfe0ff; margin: 6px 0 0; }
footer { color: var(--muted); font-size: 12px; padding: 0 28px 24px; }
"""

# On load: measure every chart (plot box size and marks actually drawn) and record the result in the
# DOM, so a headless browser's dumped DOM proves each chart rendered; then wire tooltips.
SCRIPT = """
(function () {
  var charts = document.querySelectorAll('svg.chart');
  var rendered = 0;
  charts.forEach(function (svg) {
    var plot = svg.querySelector('.plot');
    var box = plot ? plot.getBBox() : {width: 0, height: 0};
    var drawn = 0;
    svg.querySelectorAll('.mark').forEach(function (mark) {
      var b = mark.getBBox();
      if (b.width > 0 && b.height > 0) { drawn += 1; }
    });
    var lines = 0;
    svg.querySelectorAll('.series-line').forEach(function (line) {
      if (line.getTotalLength() > 0) { lines += 1; }
    });
    var expected = parseInt(svg.getAttribute('data-expected-marks') || '0', 10);
    var ok = box.width > 0 && box.height > 0 && drawn > 0 && drawn === expected;
    svg.setAttribute('data-plot-size', Math.round(box.width) + 'x' + Math.round(box.height));
    svg.setAttribute('data-drawn-marks', String(drawn));
    svg.setAttribute('data-drawn-lines', String(lines));
    svg.setAttribute('data-rendered', ok ? 'yes' : 'no');
    if (ok) { rendered += 1; }
  });
  var summary = document.getElementById('render-check');
  summary.setAttribute('data-charts-total', String(charts.length));
  summary.setAttribute('data-charts-rendered', String(rendered));
  summary.textContent = 'chart check: ' + rendered + ' of ' + charts.length + ' charts rendered with all their marks';
  var tip = document.getElementById('tooltip');
  document.querySelectorAll('svg .mark').forEach(function (mark) {
    mark.addEventListener('mousemove', function (event) {
      tip.textContent = mark.getAttribute('data-tip');
      tip.style.left = (event.clientX + 12) + 'px';
      tip.style.top = (event.clientY + 12) + 'px';
      tip.hidden = false;
    });
    mark.addEventListener('mouseleave', function () { tip.hidden = true; });
  });
})();
"""


# --- training runs (hwfit train) --------------------------------------------------------------------

TRAIN_PHASES = ("data", "copy", "forward", "backward", "optimizer")


def _training(report: shaped.ReportData) -> Markup:
    """A `hwfit train` run's baseline breakdown and every change tried; nothing for other runs."""
    runs = [run for run in report.runs if run.training]
    if not runs:
        return Markup("")
    parts: list[object] = []
    for run in runs:
        baseline = run.training[0]
        breakdown = baseline["details"].get("breakdown", {})
        parts.append(_paragraph(f"Run {run.run.id}: {run.run.model_name} — {baseline['reason']}"))
        if breakdown:
            phases = breakdown.get("phases_ms", {})
            shares = breakdown.get("shares", {})
            cells = [number(phases.get(p), 2) for p in TRAIN_PHASES] + [number(breakdown.get("rest_ms"), 2)]
            share_cells = [percent(shares.get(p)) for p in (*TRAIN_PHASES, "rest")]
            headers = [_header("", "measured", breakdown.get("timer")), *TRAIN_PHASES, "rest"]
            parts.append(_table(headers, [["ms/step", *cells], ["share", *share_cells]], numeric=tuple(range(1, 7))))
        rows = []
        for row in run.training:
            loss = "—" if row["loss_ok"] is None else ("ok" if row["loss_ok"] else "moved")
            rows.append(
                [
                    row["name"],
                    _status(row["status"]),
                    number(row["step_ms"], 1),
                    number(row["samples_per_s"], 1),
                    "—" if row["speedup"] is None else f"{row['speedup']:.2f}x",
                    loss,
                    row["reason"],
                ]
            )
        headers = ["change", "status", _header("ms/step", "measured"), _header("samples/s", "measured")]
        parts.append(_table([*headers, "speedup", "loss check", "why"], rows, numeric=(2, 3, 4)))
        rule = baseline["details"].get("rule")
        if rule:
            parts.append(_paragraph(f"Rule: {rule}."))
    heading = "Training experiments (hwfit train)"
    inside = "".join(esc(part) for part in parts)
    return Markup(f'<section id="training"><h2>{esc(heading)}</h2>{inside}</section>')
