"""How a figure was obtained: the one provenance vocabulary, its meanings, and `Figure`, a value
carried together with its unit and provenance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Every provenance label hwfit prints, with what it means (the report shows it as a tooltip).
PROVENANCE: dict[str, str] = {
    "measured": "read from a hardware counter or timed on this machine",
    "integrated": "power samples integrated over the timed runs",
    "estimated": "computed from a model of the hardware, not read from a counter",
    "computed": "computed from other figures by a stated formula",
    "counted": "counted from the model's graph (operations, bytes)",
    "spec": "from the datasheet figures in hwfit's spec catalog",
    "planned": "predicted by the planner from the measurements",
    "simulated": "predicted by the discrete-event model of hwfit serve, from measured service-time curves",
    "emulated": "produced by an emulated device that follows a given latency curve",
    "derived": "computed by this report from stored measurements",
}

# The labels an energy reading may carry (a GPU is never estimated; see telemetry.energy).
ENERGY_PROVENANCE = ("measured", "integrated", "estimated")
# The labels a hardware figure may carry (spec catalog, computed peaks, microbenchmarks).
FIGURE_PROVENANCE = ("spec", "computed", "measured", "estimated")
# Short forms for narrow table columns.
SHORT_PROVENANCE = {"measured": "meas.", "integrated": "integr.", "estimated": "est."}


def short_provenance(how: str | None) -> str:
    """'measured' -> 'meas.' for a narrow column; unknown labels pass through, None is '?'."""
    if how is None:
        return "?"
    return SHORT_PROVENANCE.get(how, how)


def check_provenance(how: str | None, allowed: tuple[str, ...], owner: str, nullable: bool = False) -> None:
    """Raise ValueError when `how` is not one of `allowed` (None only when `nullable`)."""
    if how is None and nullable:
        return
    if how not in allowed:
        extra = " or None" if nullable else ""
        raise ValueError(f"{owner}.how must be one of {allowed}{extra}, got {how!r}")


@dataclass(frozen=True)
class Figure:
    """A value in base units (FLOP/s, bytes, bytes/s, W, USD/h) with its provenance.

    `source` names a datasheet (and URL) for `spec`, the formula with its inputs for `computed`,
    the method for `measured`, and what the guess rests on for `estimated`.
    """

    value: float
    unit: str
    how: str
    source: str

    def __post_init__(self) -> None:
        check_provenance(self.how, FIGURE_PROVENANCE, "Figure")

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "unit": self.unit, "how": self.how, "source": self.source}


def format_si(value: float | None, unit: str) -> str:
    """Render 2.07e11 'FLOP/s' as '207.1 GFLOP/s' (decimal prefixes, as datasheets use)."""
    if value is None:
        return "—"
    unit = {"bytes": "B", "bytes/s": "B/s"}.get(unit, unit)
    prefixes = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))
    for scale, prefix in prefixes:
        if abs(value) >= scale:
            return f"{value / scale:.1f} {prefix}{unit}"
    return f"{value:.1f} {unit}"
