"""Text for the report: escaping (everything not marked as built markup is escaped), number
formatting, and the "how was this obtained" labels every figure carries."""

from __future__ import annotations

import html
import math

from hwfit.core import PROVENANCE


class Markup(str):
    """Text that is already HTML/SVG (built by this package from escaped parts): never escaped again."""


def esc(value: object) -> Markup:
    """`value` as HTML text: Markup passes through, anything else is converted and escaped."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def join(parts: list[object], separator: str = "") -> Markup:
    return Markup(esc(separator).join(esc(part) for part in parts))


def number(value: float | int | None, digits: int = 3) -> str:
    """Three significant figures, thousands separated; '—' for absent, 'nan' for NaN."""
    if value is None:
        return "—"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def si(value: float | None, unit: str = "") -> str:
    """A large or small quantity with an SI prefix: 1.23e12 FLOP/s -> '1.23 TFLOP/s'."""
    if value is None:
        return "—"
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return number(value)
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}".rstrip()
    return f"{value:.3g} {unit}".rstrip()


def percent(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value * 100:.3g}%"


def how_badge(how: str | None, detail: str | None = None) -> Markup:
    """A small label saying how a figure was obtained; `detail` (a formula, a source) as its tooltip."""
    if not how:
        return Markup('<span class="how how-unknown" title="not recorded">how: not recorded</span>')
    meaning = PROVENANCE.get(how, "")
    tip = "; ".join(part for part in (meaning, detail) if part)
    css = how if how in PROVENANCE else "other"
    return Markup(f'<span class="how how-{css}" title="{esc(tip)}">{esc(how)}</span>')


def slug(text: str) -> str:
    """An id for an HTML element: letters, digits and dashes."""
    kept = "".join(ch.lower() if ch.isalnum() else "-" for ch in text)
    return "-".join(part for part in kept.split("-") if part) or "x"
