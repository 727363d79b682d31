"""`Figure`: one number together with its unit and how it was obtained (spec, computed, measured, estimated)."""

from dataclasses import dataclass
from typing import Any

HOW_VALUES = ("spec", "computed", "measured", "estimated")


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
        if self.how not in HOW_VALUES:
            raise ValueError(f"Figure.how must be one of {HOW_VALUES}, got {self.how!r}")

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
