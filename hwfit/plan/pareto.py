"""Pareto frontier: the points no other point beats on every objective at once."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwfit.core import DIRECTIONS, HwfitError


class ParetoError(HwfitError):
    """Objectives or points cannot be compared (bad direction, missing or non-numeric value)."""


@dataclass(frozen=True)
class ParetoSplit:
    """Indices into the input: the front, and for each dominated point one point that beats it
    (so a plan can say "rejected: variant 7 is cheaper and faster")."""

    front: list[int]
    dominated_by: dict[int, int]


def pareto_split(points: Sequence[Any], objectives: Mapping[str, str]) -> ParetoSplit:
    """Split `points` into the non-dominated front and the dominated rest.

    `points` are mappings or objects with attributes; `objectives` maps each key to "min" or
    "max". Point a dominates b when a is at least as good on every objective and strictly
    better on one; equal points do not dominate each other, so duplicates stay on the front.
    O(n²·k) with numpy, fine for the thousands of variants a plan compares.
    """
    values = _objective_matrix(points, objectives)
    if len(points) == 0:
        return ParetoSplit(front=[], dominated_by={})
    # a[i, j] compares point i against point j on every objective at once
    no_worse = np.all(values[:, None, :] <= values[None, :, :], axis=2)
    better = np.any(values[:, None, :] < values[None, :, :], axis=2)
    dominates = no_worse & better  # dominates[i, j]: i dominates j
    front: list[int] = []
    dominated_by: dict[int, int] = {}
    for j in range(len(points)):
        beaters = np.flatnonzero(dominates[:, j])
        if beaters.size == 0:
            front.append(j)
        else:
            dominated_by[j] = int(beaters[0])
    return ParetoSplit(front=front, dominated_by=dominated_by)


def pareto_front(points: Sequence[Any], objectives: Mapping[str, str]) -> list[Any]:
    """The non-dominated points, in input order (see `pareto_split`)."""
    return [points[i] for i in pareto_split(points, objectives).front]


def _objective_matrix(points: Sequence[Any], objectives: Mapping[str, str]) -> np.ndarray:
    """n × k array where lower is better: "max" objectives are negated."""
    if not objectives:
        raise ParetoError("pareto: give at least one objective, e.g. {'p99_ms': 'min'}")
    for key, direction in objectives.items():
        if direction not in DIRECTIONS:
            raise ParetoError(f"pareto: objective {key!r} has direction {direction!r}; expected one of: min, max")
    signs = np.array([1.0 if direction == "min" else -1.0 for direction in objectives.values()])
    rows = [[_value(point, key, index) for key in objectives] for index, point in enumerate(points)]
    matrix = np.array(rows, dtype=float).reshape(len(points), len(objectives))
    return matrix * signs


def _value(point: Any, key: str, index: int) -> float:
    raw = point.get(key) if isinstance(point, Mapping) else getattr(point, key, None)
    if isinstance(raw, bool) or not isinstance(raw, (int, float, np.floating, np.integer)):
        raise ParetoError(f"pareto: point {index} has {key}={raw!r}; expected a number")
    if math.isnan(raw):
        raise ParetoError(f"pareto: point {index} has {key}=nan; expected a number")
    return float(raw)
