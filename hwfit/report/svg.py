"""Charts as inline SVG, drawn in Python: linear and log axes with ticks, line and scatter series,
reference rules, horizontal bars, and a legend. Every drawn data mark has class "mark" and a
`data-tip`, so the page's script can count what was drawn and show tooltips."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hwfit.report.text import Markup, esc, si

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
MARKERS = ("circle", "square", "diamond", "triangle", "ring", "star", "none")

_MARGIN_LEFT = 78
_MARGIN_RIGHT = 24
_MARGIN_TOP = 34
_MARGIN_BOTTOM = 50
_LEGEND_ROW_PX = 18
_LEGEND_COLUMN_PX = 340
_LEGEND_MAX_CHARS = 50


def color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    tip: str = ""  # the tooltip: what the point is and how its numbers were obtained
    label: str = ""  # short text drawn beside the point, e.g. "b8"


@dataclass(frozen=True)
class Series:
    name: str
    points: tuple[Point, ...]
    color: str
    line: bool = True  # connect the points in order
    marker: str = "circle"
    dashed: bool = False
    marker_size: float = 4.0


@dataclass(frozen=True)
class Rule:
    """A reference line across the plot at x = value (axis "x") or y = value (axis "y")."""

    axis: str
    value: float
    label: str
    color: str = "#c0392b"
    extend: bool = True  # widen the axis to show it; False: drawn only if it falls within the data


@dataclass(frozen=True)
class Chart:
    chart_id: str
    title: str
    x_label: str
    y_label: str
    series: tuple[Series, ...]
    x_log: bool = False
    y_log: bool = False
    x_zero: bool = True  # a linear axis starts at zero when the data are all positive
    y_zero: bool = True
    rules: tuple[Rule, ...] = ()
    x_ticks: tuple[float, ...] = ()  # explicit ticks (e.g. the batch sizes); empty = automatic
    width: int = 760
    plot_height: int = 320


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    color: str
    tip: str = ""
    note: str = ""  # short text after the value, e.g. "est."


@dataclass(frozen=True)
class BarChart:
    chart_id: str
    title: str
    value_label: str
    bars: tuple[Bar, ...]
    legend: tuple[tuple[str, str], ...] = ()  # (name, color)
    width: int = 760


@dataclass(frozen=True)
class Scale:
    """Data interval [low, high] onto pixels [start, end]; log scales map log10 of the value."""

    low: float
    high: float
    log: bool
    ticks: tuple[float, ...]

    def to_px(self, value: float, start: float, end: float) -> float:
        if self.log:
            low, high, value = math.log10(self.low), math.log10(self.high), math.log10(value)
        else:
            low, high = self.low, self.high
        share = 0.5 if high == low else (value - low) / (high - low)
        return start + share * (end - start)

    def contains(self, value: float) -> bool:
        return usable(value, self.log)


def usable(value: float | None, log: bool) -> bool:
    """A value that can be placed on an axis: finite, and positive on a log axis."""
    if value is None or not math.isfinite(value):
        return False
    return value > 0 if log else True


# --- scales and ticks ------------------------------------------------------------------------------


def make_scale(values: list[float], log: bool, zero: bool = True, ticks: tuple[float, ...] = ()) -> Scale:
    """A scale covering `values` with readable ticks (1-2-5 steps, or decades on a log axis)."""
    values = [v for v in values if usable(v, log)]
    if not values:
        values = [1.0, 10.0] if log else [0.0, 1.0]
    if log:
        return _log_scale(min(values), max(values), ticks)
    return _linear_scale(min(values), max(values), zero, ticks)


def _linear_scale(low: float, high: float, zero: bool, ticks: tuple[float, ...]) -> Scale:
    if zero and low > 0:
        low = 0.0
    if zero and high < 0:
        high = 0.0
    if high == low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    step = _nice_step((high - low) / 5)
    low = math.floor(low / step) * step
    high = math.ceil(high / step) * step
    if not ticks:
        count = int(round((high - low) / step))
        ticks = tuple(round(low + i * step, 12) for i in range(count + 1))
    return Scale(low, high, False, ticks)


def _nice_step(rough: float) -> float:
    exponent = math.floor(math.log10(rough))
    fraction = rough / 10**exponent
    for nice in (1, 2, 2.5, 5, 10):
        if fraction <= nice:
            return nice * 10**exponent
    return 10 * 10**exponent


def _log_scale(low: float, high: float, ticks: tuple[float, ...]) -> Scale:
    low_exp = math.floor(math.log10(low))
    high_exp = math.ceil(math.log10(high))
    if high_exp == low_exp:
        high_exp += 1
    if ticks:
        return Scale(min(10.0**low_exp, min(ticks)), max(10.0**high_exp, max(ticks)), True, ticks)
    decades = high_exp - low_exp
    stride = max(1, math.ceil(decades / 8))
    found = [10.0**e for e in range(low_exp, high_exp + 1, stride)]
    if decades <= 2:
        found += [m * 10.0**e for e in range(low_exp, high_exp) for m in (2, 5)]
    return Scale(10.0**low_exp, 10.0**high_exp, True, tuple(sorted(found)))


def tick_text(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return si(value).replace(" ", "")
    if abs(value) >= 1:
        return f"{value:g}"
    return f"{value:.3g}"


# --- XY charts -------------------------------------------------------------------------------------


@dataclass
class _Frame:
    """Pixel geometry of one XY chart: the plot rectangle and its two scales."""

    left: float
    top: float
    right: float
    bottom: float
    x: Scale
    y: Scale
    parts: list[str] = field(default_factory=list)

    def px(self, point_x: float, point_y: float) -> tuple[float, float]:
        return self.x.to_px(point_x, self.left, self.right), self.y.to_px(point_y, self.bottom, self.top)


def render_chart(chart: Chart) -> Markup:
    """One XY chart as an <svg> element; marks carry tooltips; a legend sits under the plot."""
    x_values = [p.x for s in chart.series for p in s.points]
    y_values = [p.y for s in chart.series for p in s.points]
    x_values += [r.value for r in chart.rules if r.axis == "x" and r.extend]
    y_values += [r.value for r in chart.rules if r.axis == "y" and r.extend]
    frame = _Frame(
        left=_MARGIN_LEFT,
        top=_MARGIN_TOP,
        right=chart.width - _MARGIN_RIGHT,
        bottom=_MARGIN_TOP + chart.plot_height,
        x=make_scale(x_values, chart.x_log, chart.x_zero, chart.x_ticks),
        y=make_scale(y_values, chart.y_log, chart.y_zero),
    )
    legend_rows = _legend_rows(len(chart.series), chart.width)
    height = frame.bottom + _MARGIN_BOTTOM + legend_rows * _LEGEND_ROW_PX + 8
    _draw_axes(frame, chart)
    _draw_rules(frame, chart.rules)
    marks = sum(_draw_series(frame, series, index) for index, series in enumerate(chart.series))
    _draw_legend(frame.parts, chart.series, frame.bottom + _MARGIN_BOTTOM, chart.width)
    return _svg(chart.chart_id, chart.title, chart.width, height, marks, frame.parts)


def _svg(chart_id: str, title: str, width: float, height: float, marks: int, parts: list[str]) -> Markup:
    head = (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" data-chart="{esc(chart_id)}" '
        f'data-expected-marks="{marks}" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
        f'height="{height:.0f}" role="img" aria-label="{esc(title)}">'
    )
    heading = f'<text class="chart-title" x="{_MARGIN_LEFT}" y="20">{esc(title)}</text>'
    return Markup(head + heading + "".join(parts) + "</svg>")


def _draw_axes(frame: _Frame, chart: Chart) -> None:
    parts = frame.parts
    parts.append(
        f'<g class="plot"><rect class="plot-area" x="{frame.left}" y="{frame.top}" '
        f'width="{frame.right - frame.left}" height="{frame.bottom - frame.top}"/></g>'
    )
    for tick in frame.x.ticks:
        if not (frame.x.low <= tick <= frame.x.high) or not frame.x.contains(tick):
            continue
        x = frame.x.to_px(tick, frame.left, frame.right)
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" y2="{frame.bottom}"/>')
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{frame.bottom + 15}" text-anchor="middle">{esc(tick_text(tick))}</text>'
        )
    for tick in frame.y.ticks:
        if not (frame.y.low <= tick <= frame.y.high) or not frame.y.contains(tick):
            continue
        y = frame.y.to_px(tick, frame.bottom, frame.top)
        parts.append(f'<line class="grid" x1="{frame.left}" y1="{y:.1f}" x2="{frame.right}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="tick" x="{frame.left - 6}" y="{y + 4:.1f}" text-anchor="end">{esc(tick_text(tick))}</text>'
        )
    x_note = " (log scale)" if chart.x_log else ""
    y_note = " (log scale)" if chart.y_log else ""
    middle_x = (frame.left + frame.right) / 2
    middle_y = (frame.top + frame.bottom) / 2
    parts.append(
        f'<text class="axis-label" x="{middle_x:.1f}" y="{frame.bottom + 36}" text-anchor="middle">'
        f"{esc(chart.x_label + x_note)}</text>"
    )
    parts.append(
        f'<text class="axis-label" transform="translate(16 {middle_y:.1f}) rotate(-90)" '
        f'text-anchor="middle">{esc(chart.y_label + y_note)}</text>'
    )


def _draw_rules(frame: _Frame, rules: tuple[Rule, ...]) -> None:
    for rule in rules:
        scale = frame.x if rule.axis == "x" else frame.y
        if not scale.contains(rule.value) or not scale.low <= rule.value <= scale.high:
            continue
        if rule.axis == "x":
            x = frame.x.to_px(rule.value, frame.left, frame.right)
            line = f'x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" y2="{frame.bottom}"'
            text = f'x="{x - 4:.1f}" y="{frame.top + 12}" text-anchor="end"'
        else:
            y = frame.y.to_px(rule.value, frame.bottom, frame.top)
            line = f'x1="{frame.left}" y1="{y:.1f}" x2="{frame.right}" y2="{y:.1f}"'
            text = f'x="{frame.right - 4}" y="{y - 4:.1f}" text-anchor="end"'
        frame.parts.append(
            f'<line class="rule" {line} stroke="{esc(rule.color)}"><title>{esc(rule.label)}</title></line>'
        )
        frame.parts.append(f'<text class="rule-label" {text} fill="{esc(rule.color)}">{esc(rule.label)}</text>')


def _draw_series(frame: _Frame, series: Series, index: int) -> int:
    """Draw one series; returns how many point marks it drew."""
    points = [p for p in series.points if frame.x.contains(p.x) and frame.y.contains(p.y)]
    if not points:
        return 0
    parts = frame.parts
    parts.append(f'<g class="series" data-series="{esc(series.name)}" data-index="{index}">')
    if series.line and len(points) > 1:
        coordinates = " ".join(f"{x:.1f},{y:.1f}" for x, y in (frame.px(p.x, p.y) for p in points))
        dash = ' stroke-dasharray="6 4"' if series.dashed else ""
        parts.append(
            f'<polyline class="series-line" points="{coordinates}" stroke="{esc(series.color)}"{dash}>'
            f"<title>{esc(series.name)}</title></polyline>"
        )
    drawn = 0
    if series.marker != "none":
        for point in points:
            x, y = frame.px(point.x, point.y)
            parts.append(_marker(series.marker, x, y, series.marker_size, series.color, point.tip or series.name))
            drawn += 1
            if point.label:
                parts.append(f'<text class="point-label" x="{x + 6:.1f}" y="{y - 6:.1f}">{esc(point.label)}</text>')
    parts.append("</g>")
    return drawn


def _marker(shape: str, x: float, y: float, size: float, fill: str, tip: str) -> str:
    attributes = f'class="mark" data-tip="{esc(tip)}"'
    title = f"<title>{esc(tip)}</title>"
    color_ = esc(fill)
    if shape == "square":
        return (
            f'<rect {attributes} x="{x - size:.1f}" y="{y - size:.1f}" width="{2 * size:.1f}" '
            f'height="{2 * size:.1f}" fill="{color_}">{title}</rect>'
        )
    if shape in ("diamond", "triangle", "star"):
        path = _marker_path(shape, x, y, size)
        return f'<path {attributes} d="{path}" fill="{color_}">{title}</path>'
    if shape == "ring":
        return (
            f'<circle {attributes} cx="{x:.1f}" cy="{y:.1f}" r="{size * 2:.1f}" fill="none" '
            f'stroke="{color_}" stroke-width="2.5">{title}</circle>'
        )
    return f'<circle {attributes} cx="{x:.1f}" cy="{y:.1f}" r="{size:.1f}" fill="{color_}">{title}</circle>'


def _marker_path(shape: str, x: float, y: float, size: float) -> str:
    if shape == "diamond":
        s = size * 1.3
        return f"M{x:.1f},{y - s:.1f} L{x + s:.1f},{y:.1f} L{x:.1f},{y + s:.1f} L{x - s:.1f},{y:.1f} Z"
    if shape == "triangle":
        s = size * 1.3
        return f"M{x:.1f},{y - s:.1f} L{x + s:.1f},{y + s:.1f} L{x - s:.1f},{y + s:.1f} Z"
    corners = []
    for i in range(10):  # a five-pointed star: outer and inner radius alternate
        radius = size * 2.2 if i % 2 == 0 else size * 0.9
        angle = -math.pi / 2 + i * math.pi / 5
        corners.append(f"{x + radius * math.cos(angle):.1f},{y + radius * math.sin(angle):.1f}")
    return "M" + " L".join(corners) + " Z"


# --- legend ----------------------------------------------------------------------------------------


def _legend_rows(count: int, width: float) -> int:
    columns = max(1, int((width - _MARGIN_LEFT) // _LEGEND_COLUMN_PX))
    return math.ceil(count / columns)


def _draw_legend(parts: list[str], series: tuple[Series, ...], top: float, width: float) -> None:
    columns = max(1, int((width - _MARGIN_LEFT) // _LEGEND_COLUMN_PX))
    parts.append('<g class="legend">')
    for index, entry in enumerate(series):
        x = _MARGIN_LEFT + (index % columns) * _LEGEND_COLUMN_PX
        y = top + (index // columns) * _LEGEND_ROW_PX
        dash = ' stroke-dasharray="6 4"' if entry.dashed else ""
        if entry.line or entry.marker == "none":
            parts.append(
                f'<line class="legend-line" x1="{x}" y1="{y}" x2="{x + 22}" y2="{y}" '
                f'stroke="{esc(entry.color)}"{dash}/>'
            )
        if entry.marker != "none":
            parts.append(_legend_marker(entry.marker, x + 11, y, entry.color))
        name = entry.name if len(entry.name) <= _LEGEND_MAX_CHARS else entry.name[: _LEGEND_MAX_CHARS - 1] + "…"
        parts.append(
            f'<text class="legend-text" x="{x + 28}" y="{y + 4}">{esc(name)}<title>{esc(entry.name)}</title></text>'
        )
    parts.append("</g>")


def _legend_marker(shape: str, x: float, y: float, fill: str) -> str:
    """The series' marker shape, drawn small and without the "mark" class (it is not data)."""
    return _marker(shape, x, y, 3.5, fill, "").replace('class="mark" data-tip=""', 'class="legend-mark"', 1)


# --- bar charts ------------------------------------------------------------------------------------


def render_bar_chart(chart: BarChart) -> Markup:
    """Horizontal bars, one per row, value written after each bar; a zero value still shows a sliver."""
    label_px, value_px, row_px = 300, 120, 22
    left, right = label_px, chart.width - value_px
    top = _MARGIN_TOP + 6
    scale = make_scale([bar.value for bar in chart.bars], log=False, zero=True)
    legend_top = top + row_px * len(chart.bars) + 24
    height = legend_top + (_LEGEND_ROW_PX if chart.legend else 0) + 30
    parts = [
        f'<g class="plot"><rect class="plot-area" x="{left}" y="{top - 4}" width="{right - left}" '
        f'height="{row_px * len(chart.bars) + 4}"/></g>'
    ]
    drawn = 0
    for index, bar in enumerate(chart.bars):
        if not usable(bar.value, log=False):
            continue
        y = top + index * row_px
        length = max(1.5, scale.to_px(bar.value, left, right) - left)
        name = bar.label if len(bar.label) <= 44 else bar.label[:43] + "…"
        parts.append(
            f'<text class="bar-label" x="{left - 8}" y="{y + 13}" text-anchor="end">{esc(name)}'
            f"<title>{esc(bar.label)}</title></text>"
        )
        tip = esc(bar.tip or bar.label)
        parts.append(
            f'<rect class="mark" data-tip="{tip}" x="{left}" y="{y + 2}" width="{length:.1f}" '
            f'height="{row_px - 6}" fill="{esc(bar.color)}"><title>{tip}</title></rect>'
        )
        value_text = si(bar.value) if abs(bar.value) >= 1000 else f"{bar.value:.3g}"
        note = f" {bar.note}" if bar.note else ""
        parts.append(
            f'<text class="bar-value" x="{left + length + 6:.1f}" y="{y + 13}">{esc(value_text + note)}</text>'
        )
        drawn += 1
    parts.append(
        f'<text class="axis-label" x="{(left + right) / 2:.1f}" y="{legend_top - 6}" text-anchor="middle">'
        f"{esc(chart.value_label)}</text>"
    )
    for index, (name, fill) in enumerate(chart.legend):
        x = left + index * 170
        parts.append(
            f'<rect class="legend-mark" x="{x}" y="{legend_top + 6}" width="12" height="12" fill="{esc(fill)}"/>'
        )
        parts.append(f'<text class="legend-text" x="{x + 18}" y="{legend_top + 16}">{esc(name)}</text>')
    return _svg(chart.chart_id, chart.title, chart.width, height, drawn, parts)
