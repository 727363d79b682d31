"""The baseline a check compares against: a run in the results store (`--baseline 12`), or a file
in `hwfit results --format json` form — an export, or the baseline `hwfit check --update-baseline`
keeps in the user's repository (the same format: one run with its environment and, per point, the
figures of every round)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hwfit.check.errors import CheckError
from hwfit.core import is_usable
from hwfit.store import Environment, Measurement, Run, StoreError, open_store

EXPORT_SCHEMA = "hwfit.results/1"


@dataclass
class Baseline:
    """What a baseline says: the run (model, environment, settings) and its points by variant key."""

    origin: str  # "run 12 in results.db" or "baseline.json"
    run: Run
    points: dict[str, Measurement]

    @property
    def usable(self) -> dict[str, Measurement]:
        return {key: point for key, point in self.points.items() if is_usable(point.status)}


def is_run_id(ref: str) -> bool:
    return ref.removeprefix("run:").isdigit()


def load_baseline(ref: str, db: str | Path | None = None) -> Baseline:
    """A stored run id (`12` or `run:12`) or the path of a results/baseline JSON file."""
    if is_run_id(ref):
        return _from_store(int(ref.removeprefix("run:")), db)
    return load_baseline_file(Path(ref))


def _from_store(run_id: int, db) -> Baseline:
    try:
        with open_store(db, create=False) as store:
            run = store.get_run(run_id)
            points = store.measurements(run_id)
            origin = f"run {run_id} in {store.path}"
    except StoreError as error:
        raise CheckError(f"baseline run {run_id}: {error}") from None
    return _checked(Baseline(origin, run, {point.variant_key: point for point in points}))


def load_baseline_file(path: Path) -> Baseline:
    origin = str(path)
    if not path.is_file():
        raise CheckError(
            f"baseline file {path} not found; record one with `hwfit check MODEL --baseline {path} --update-baseline`"
        )
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckError(f"baseline file {path} is not JSON: {error}") from None
    if not isinstance(document, dict) or document.get("schema") != EXPORT_SCHEMA:
        schema = document.get("schema") if isinstance(document, dict) else type(document).__name__
        hint = (
            " (a listing of runs: export one with `hwfit results RUN --format json`)"
            if schema == "hwfit.runs/1"
            else ""
        )
        raise CheckError(f"baseline file {path} has schema {schema!r}, expected {EXPORT_SCHEMA!r}{hint}")
    try:
        run = _run_from_dict(document["run"])
        points = [Measurement.from_dict(item) for item in document["measurements"]]
    except (KeyError, TypeError, StoreError) as error:
        raise CheckError(f"baseline file {path} is not a complete results export: {error}") from None
    return _checked(Baseline(origin, run, {point.variant_key: point for point in points}))


def _run_from_dict(data: dict) -> Run:
    values = dict(data)
    values["environment"] = Environment.from_dict(values["environment"])
    return Run(**values)


def _checked(baseline: Baseline) -> Baseline:
    if not baseline.usable:
        statuses = ", ".join(f"{key}: {point.status}" for key, point in baseline.points.items()) or "no points"
        raise CheckError(f"baseline {baseline.origin} has no measured point to compare with ({statuses})")
    return baseline


def write_baseline(path: str | Path, export_json: str) -> Path:
    """Write a run's JSON export as the baseline file (parents made; replaced atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(export_json)
    partial.replace(path)
    return path
