"""Measurements as flat rows: JSON and CSV exports, and a pandas DataFrame when pandas is installed."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from hwfit.core import POINT_STATUSES
from hwfit.store._errors import StoreError
from hwfit.store.records import LatencyStats, Measurement, Run

EXPORT_SCHEMA = "hwfit.results/1"
_NESTED = ("variant", "latency", "details", "rounds")


def run_to_json(run: Run, extra: dict, measurements: list[Measurement]) -> str:
    """One document: the run (with its environment), its extra data, and every measurement."""
    document = {
        "schema": EXPORT_SCHEMA,
        "run": run.to_dict(),
        "extra": extra,
        "measurements": [measurement.to_dict() for measurement in measurements],
    }
    return json.dumps(document, indent=2) + "\n"


def flatten(measurement: Measurement) -> dict[str, Any]:
    """One flat row: variant.* and latency.* columns, scalar fields, details as JSON text."""
    data = measurement.to_dict()
    row: dict[str, Any] = {"variant_key": measurement.variant_key, "status": measurement.status}
    row.update(_flatten_dict("variant", measurement.variant))
    for name in LatencyStats.__dataclass_fields__:
        row[f"latency.{name}"] = getattr(measurement.latency, name) if measurement.latency else None
    for name, value in data.items():
        if name not in row and name not in _NESTED:
            row[name] = value
    row["details"] = json.dumps(measurement.details, default=str) if measurement.details else None
    row["rounds"] = json.dumps(measurement.rounds) if measurement.rounds else None
    return row


def measurements_to_csv(measurements: list[Measurement], run_id: int | None = None) -> str:
    """CSV text: a header, then one row per measurement; columns are the union, in first-seen order."""
    rows = [flatten(measurement) for measurement in measurements]
    if run_id is not None:
        rows = [{"run_id": run_id, **row} for row in rows]
    columns = _columns(rows) or ["run_id", *flatten(Measurement("", {}, "ok")).keys()]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: "" if value is None else value for key, value in row.items()} for row in rows)
    return buffer.getvalue()


def to_frame(measurements: list[Measurement]):
    """A pandas DataFrame with one flattened row per measurement (pandas is optional)."""
    try:
        import pandas
    except ImportError:
        raise StoreError("pandas is not installed: pip install pandas") from None
    rows = [flatten(measurement) for measurement in measurements]
    return pandas.DataFrame(rows, columns=_columns(rows) or None)


def _flatten_dict(prefix: str, value: dict) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}.{key}"
        if isinstance(item, dict):
            flat.update(_flatten_dict(name, item))
        elif isinstance(item, (list, tuple)):
            flat[name] = json.dumps(item, default=str)
        else:
            flat[name] = item
    return flat


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def run_summary(run: Run) -> dict[str, Any]:
    """One flat row per run, for listings and their CSV/JSON exports."""
    environment = run.environment
    return {
        "id": run.id,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "status": run.status,
        "model_name": run.model_name,
        "model_source": run.model_source,
        "model_hash": run.model_hash,
        "sweep_key": run.sweep_key,
        "points": run.point_count,
        **{f"points_{status}": run.status_counts.get(status, 0) for status in POINT_STATUSES},
        "hwfit_version": environment.hwfit_version,
        "hwfit_commit": environment.hwfit_commit,
        "cpu_model": environment.cpu_model,
        "gpu_names": "; ".join(environment.gpu_names),
        "note": run.note,
    }


def runs_to_csv(runs: list[Run]) -> str:
    """CSV text: a header, then one row per run (see run_summary)."""
    rows = [run_summary(run) for run in runs]
    columns = list(rows[0]) if rows else list(_EMPTY_SUMMARY_COLUMNS)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: "" if value is None else value for key, value in row.items()} for row in rows)
    return buffer.getvalue()


def runs_to_json(runs: list[Run]) -> str:
    """One document listing runs, each with its environment and point counts."""
    return json.dumps({"schema": "hwfit.runs/1", "runs": [run.to_dict() for run in runs]}, indent=2) + "\n"


_EMPTY_SUMMARY_COLUMNS = (
    "id",
    "created_at",
    "finished_at",
    "status",
    "model_name",
    "model_source",
    "model_hash",
    "sweep_key",
    "points",
    "points_ok",
    "points_unstable",
    "points_failed",
    "points_skipped",
    "hwfit_version",
    "hwfit_commit",
    "cpu_model",
    "gpu_names",
    "note",
)
