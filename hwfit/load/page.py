"""`hwfit load --report FILE.html`: one self-contained page (inline SVG, no script, no fetches) with
the summary and two plots over time: each request's latency (log scale, coloured by outcome) and
requests per second offered, answered and refused."""

from __future__ import annotations

import html
import math
from pathlib import Path

from hwfit.load.summary import LoadResult

WIDTH, HEIGHT = 900, 320
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 20, 40
COLORS = {"ok": "#1f77b4", "rejected": "#ff7f0e", "error": "#d62728", "cancelled": "#7f7f7f"}
MAX_POINTS = 20_000  # more than this are thinned evenly (the counts in the table are over all)


def write_report(result: LoadResult, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(result))
    return path


def render(result: LoadResult) -> str:
    summary = result.summary()
    title = f"hwfit load: {result.model or result.url}"
    shape = f"traffic {result.traffic}" if result.mode == "open" else f"closed loop, {result.concurrency} client(s)"
    rows = [
        ("target", f"{result.url} (model {result.model or '-'}: {result.model_how or '-'})"),
        ("load", f"{shape}; {result.duration_s:g} s, the first {result.warmup_s:g} s warm-up (excluded)"),
        ("inputs", result.inputs or "-"),
        ("offered / answered", f"{summary['offered_rps']:.1f} / {summary['answered_rps']:.1f} req/s"),
        (
            "latency ms p50 / p90 / p99 / p99.9 / max",
            " / ".join(_ms(summary[k]) for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")),
        ),
        (
            "ok / rejected / errors / cancelled",
            f"{summary['ok']} / {summary['rejected']} / {summary['errors']} / {summary['cancelled']}",
        ),
        ("late sends", f"{summary['late']} (> {summary['late_threshold_ms']:g} ms after schedule)"),
    ]
    rows += [(f"rejected: {reason}", str(count)) for reason, count in summary["rejected_reasons"].items()]
    rows += [(f"error: {kind}", str(count)) for kind, count in summary["error_kinds"].items()]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    how = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in result.to_dict()["how"].items())
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}th{text-align:left;padding-right:1em;"
        "font-weight:600}td,th{padding:2px 8px;border-bottom:1px solid #eee}svg{display:block;margin:1em 0}"
        ".axis{stroke:#888}.grid{stroke:#eee}text{font-size:11px;fill:#444}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table>{table}</table>"
        f"<h2>Latency over time</h2>{latency_plot(result)}"
        f"<h2>Requests per second</h2>{rate_plot(result)}"
        f"<h2>How these figures were obtained</h2><ul>{how}</ul></body></html>\n"
    )


def _ms(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def latency_plot(result: LoadResult) -> str:
    """Each request at its scheduled time: latency in ms on a log axis, coloured by outcome."""
    records = result.records
    if len(records) > MAX_POINTS:
        step = len(records) / MAX_POINTS
        records = [records[int(i * step)] for i in range(MAX_POINTS)]
    values = [max(r.latency_ms, 0.01) for r in records]
    if not values:
        return "<p>no requests were sent</p>"
    low = 10 ** math.floor(math.log10(min(values)))
    high = 10 ** math.ceil(math.log10(max(values) * 1.01))
    x_max = max(result.duration_s, max(r.ended_s for r in records))
    parts = _frame(x_max, "seconds from the start", "latency ms (log)")
    for decade in range(round(math.log10(low)), round(math.log10(high)) + 1):
        y = _y_log(10**decade, low, high)
        parts.append(f"<line class='grid' x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{y:.1f}' y2='{y:.1f}'/>")
        parts.append(f"<text x='{LEFT - 6}' y='{y + 4:.1f}' text-anchor='end'>{10**decade:g}</text>")
    warm = _x(result.warmup_s, x_max)
    parts.append(
        f"<line x1='{warm:.1f}' x2='{warm:.1f}' y1='{TOP}' y2='{HEIGHT - BOTTOM}' stroke='#aaa' "
        "stroke-dasharray='4 3'/><text x='{0:.1f}' y='{1}'>end of warm-up</text>".format(warm + 4, TOP + 10)
    )
    for r, value in zip(records, values):
        parts.append(
            f"<circle cx='{_x(r.scheduled_s, x_max):.1f}' cy='{_y_log(value, low, high):.1f}' r='1.6' "
            f"fill='{COLORS.get(r.outcome, '#000')}'><title>{r.outcome} {r.latency_ms:.1f} ms</title></circle>"
        )
    parts += _legend(list(COLORS.items()))
    return _svg(parts)


def rate_plot(result: LoadResult) -> str:
    """Per second of scheduled time: requests offered, answered (200) and refused."""
    seconds = max(1, math.ceil(result.duration_s))
    series = {name: [0] * seconds for name in ("offered", "answered", "refused")}
    for r in result.records:
        second = min(seconds - 1, max(0, int(r.scheduled_s)))
        series["offered"][second] += 1
        if r.outcome == "ok":
            series["answered"][min(seconds - 1, max(0, int(r.ended_s)))] += 1
        elif r.outcome == "rejected":
            series["refused"][second] += 1
    y_max = max(1, *(max(values) for values in series.values()))
    parts = _frame(seconds, "seconds from the start", "requests / s")
    for fraction in (0.0, 0.5, 1.0):
        y = HEIGHT - BOTTOM - fraction * (HEIGHT - TOP - BOTTOM)
        parts.append(f"<line class='grid' x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{y:.1f}' y2='{y:.1f}'/>")
        parts.append(f"<text x='{LEFT - 6}' y='{y + 4:.1f}' text-anchor='end'>{fraction * y_max:g}</text>")
    colors = {"offered": "#7f7f7f", "answered": "#1f77b4", "refused": "#ff7f0e"}
    for name, values in series.items():
        points = " ".join(
            f"{_x(i + 0.5, seconds):.1f},{HEIGHT - BOTTOM - v / y_max * (HEIGHT - TOP - BOTTOM):.1f}"
            for i, v in enumerate(values)
        )
        parts.append(f"<polyline fill='none' stroke='{colors[name]}' stroke-width='1.5' points='{points}'/>")
    parts += _legend(list(colors.items()))
    return _svg(parts)


def _frame(x_max: float, x_label: str, y_label: str) -> list[str]:
    parts = [
        f"<line class='axis' x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{HEIGHT - BOTTOM}' y2='{HEIGHT - BOTTOM}'/>",
        f"<line class='axis' x1='{LEFT}' x2='{LEFT}' y1='{TOP}' y2='{HEIGHT - BOTTOM}'/>",
        f"<text x='{(LEFT + WIDTH - RIGHT) / 2}' y='{HEIGHT - 6}' text-anchor='middle'>{html.escape(x_label)}</text>",
        f"<text x='14' y='{(TOP + HEIGHT - BOTTOM) / 2}' transform='rotate(-90 14 {(TOP + HEIGHT - BOTTOM) / 2})' "
        f"text-anchor='middle'>{html.escape(y_label)}</text>",
    ]
    step = _nice_step(x_max / 8)
    tick = 0.0
    while tick <= x_max + 1e-9:
        x = _x(tick, x_max)
        parts.append(f"<text x='{x:.1f}' y='{HEIGHT - BOTTOM + 14}' text-anchor='middle'>{tick:g}</text>")
        tick += step
    return parts


def _legend(items: list[tuple[str, str]]) -> list[str]:
    parts = []
    for i, (name, fill) in enumerate(items):
        x = WIDTH - RIGHT - 90 * (len(items) - i)
        parts.append(f"<rect x='{x}' y='{TOP - 14}' width='10' height='10' fill='{fill}'/>")
        parts.append(f"<text x='{x + 14}' y='{TOP - 5}'>{html.escape(name)}</text>")
    return parts


def _svg(parts: list[str]) -> str:
    return f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}'>{''.join(parts)}</svg>"


def _x(t: float, x_max: float) -> float:
    return LEFT + t / max(x_max, 1e-9) * (WIDTH - LEFT - RIGHT)


def _y_log(value: float, low: float, high: float) -> float:
    fraction = (math.log10(value) - math.log10(low)) / max(math.log10(high) - math.log10(low), 1e-9)
    return HEIGHT - BOTTOM - fraction * (HEIGHT - TOP - BOTTOM)


def _nice_step(rough: float) -> float:
    if rough <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(rough))
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= rough:
            return factor * magnitude
    return 10 * magnitude
