"""The store layer: the SQLite results database (runs, points, metrics, environments), its schema
migrations, and exports. Imports only hwfit.core. Everything public is in `__all__`.
"""

from hwfit.store._errors import StoreError
from hwfit.store.db import ResultsStore, default_db_path, open_store, resolve_db_path
from hwfit.store.export import flatten, measurements_to_csv, run_summary, runs_to_csv, runs_to_json, to_frame
from hwfit.store.metrics import METRICS, MetricSpec
from hwfit.store.records import (
    POINT_STATUSES,
    ROUND_METRICS,
    RUN_STATUSES,
    Environment,
    LatencyStats,
    Measurement,
    Run,
    hostname_hash,
)
from hwfit.store.schema import MIGRATIONS, SCHEMA_VERSION, Migration

__all__ = [
    "METRICS",
    "MIGRATIONS",
    "POINT_STATUSES",
    "ROUND_METRICS",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "Environment",
    "LatencyStats",
    "Measurement",
    "MetricSpec",
    "Migration",
    "ResultsStore",
    "Run",
    "StoreError",
    "default_db_path",
    "flatten",
    "hostname_hash",
    "measurements_to_csv",
    "open_store",
    "resolve_db_path",
    "run_summary",
    "runs_to_csv",
    "runs_to_json",
    "to_frame",
]
