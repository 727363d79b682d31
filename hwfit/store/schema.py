"""The database schema as an ordered list of migrations, and the code that applies them.

A database records every migration applied to it in `schema_version`; opening one brings it up to
SCHEMA_VERSION inside a single transaction, so a crash mid-migration leaves the old version intact.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from hwfit.store._errors import StoreError

Step = str | Callable[[sqlite3.Connection], None]


@dataclass(frozen=True)
class Migration:
    """The steps (SQL statements or callables) that take a database from `version - 1` to `version`."""

    version: int
    description: str
    steps: tuple[Step, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "environments, runs, points and long-format measurements",
        (
            """CREATE TABLE environments (
                id INTEGER PRIMARY KEY,
                key TEXT NOT NULL UNIQUE,          -- Environment.key(): content hash
                hwfit_version TEXT NOT NULL,
                hwfit_commit TEXT,
                python TEXT NOT NULL,
                numpy TEXT,
                onnxruntime TEXT,
                torch TEXT,
                openvino TEXT,
                cuda TEXT,
                nvidia_driver TEXT,
                cpu_model TEXT,
                gpu_names TEXT NOT NULL,           -- JSON list
                hostname_hash TEXT NOT NULL,
                extra TEXT NOT NULL                -- JSON object
            )""",
            """CREATE TABLE runs (
                id INTEGER PRIMARY KEY AUTOINCREMENT,  -- ids are never reused
                created_at TEXT NOT NULL,
                finished_at TEXT,
                status TEXT NOT NULL CHECK (status IN ('running', 'complete', 'interrupted', 'failed')),
                model_name TEXT NOT NULL,
                model_source TEXT NOT NULL,
                model_hash TEXT NOT NULL,
                sweep_key TEXT NOT NULL,
                args TEXT NOT NULL,                -- JSON object
                environment_id INTEGER NOT NULL REFERENCES environments(id),
                note TEXT
            )""",
            """CREATE TABLE points (
                id INTEGER PRIMARY KEY,
                run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                variant_key TEXT NOT NULL,
                status TEXT NOT NULL CHECK (status IN ('ok', 'unstable', 'failed', 'skipped')),
                reason TEXT,
                variant TEXT NOT NULL,             -- JSON object
                roofline_bound TEXT,
                energy_how TEXT,
                energy_note TEXT,
                started_at TEXT,
                details TEXT NOT NULL,             -- JSON object
                metric_count INTEGER NOT NULL,     -- rows this point has in `measurements`
                UNIQUE (run_id, variant_key)
            )""",
            """CREATE TABLE measurements (
                point_id INTEGER NOT NULL REFERENCES points(id) ON DELETE CASCADE,
                name TEXT NOT NULL,                -- "latency.p99_ms", "samples_per_s", ...
                value REAL,                        -- NULL means NaN; an absent metric has no row
                unit TEXT NOT NULL,
                how TEXT NOT NULL,                 -- measured | computed | counted | energy's how
                PRIMARY KEY (point_id, name)
            ) WITHOUT ROWID""",
        ),
    ),
    Migration(
        2,
        "run bookkeeping: extra JSON (machine ceilings), writer pid/host, lookup index for resume",
        (
            "ALTER TABLE runs ADD COLUMN extra TEXT NOT NULL DEFAULT '{}'",
            "ALTER TABLE runs ADD COLUMN writer_pid INTEGER",
            "ALTER TABLE runs ADD COLUMN writer_host TEXT",
            "CREATE INDEX runs_by_model_sweep ON runs (model_hash, sweep_key)",
        ),
    ),
    Migration(
        3,
        "per-round samples of a point (one row per fresh process x metric), for regression checks",
        (
            """CREATE TABLE rounds (
                point_id INTEGER NOT NULL REFERENCES points(id) ON DELETE CASCADE,
                round INTEGER NOT NULL,            -- 0, 1, ... in the order the processes ran
                name TEXT NOT NULL,                -- one of store.ROUND_METRICS
                value REAL NOT NULL,
                PRIMARY KEY (point_id, round, name)
            ) WITHOUT ROWID""",
        ),
    ),
    Migration(
        4,
        "training experiments of `hwfit train advise` (one row per change tried, in a run)",
        (
            """CREATE TABLE train_experiments (
                run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                position INTEGER NOT NULL,         -- 0 = baseline, then in the order tried
                name TEXT NOT NULL,                -- "bf16 autocast", "data loader workers", ...
                kind TEXT NOT NULL,                -- baseline | speed | batch | ddp | combination
                status TEXT NOT NULL
                    CHECK (status IN ('baseline', 'kept', 'rejected', 'failed', 'skipped', 'combined')),
                reason TEXT NOT NULL,
                changes TEXT NOT NULL,             -- JSON object: the Changes applied
                code TEXT NOT NULL,                -- the lines of code the change means
                step_ms REAL,
                samples_per_s REAL,
                speedup REAL,                      -- samples/s over the baseline's
                loss_ok INTEGER,                   -- 1/0 where the loss was compared, else NULL
                peak_memory_bytes INTEGER,
                details TEXT NOT NULL,             -- JSON object: breakdown, losses, loss check
                PRIMARY KEY (run_id, position)
            ) WITHOUT ROWID""",
        ),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version

_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL,
    description TEXT NOT NULL
)"""


def current_version(connection: sqlite3.Connection, path: Path) -> int:
    """The newest migration applied; 0 for an empty database. Refuses a foreign SQLite file."""
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_version" not in tables:
        if tables - {"sqlite_sequence"}:
            raise StoreError(
                f"{path} is an SQLite database but not an hwfit results database "
                f"(tables: {', '.join(sorted(tables))}); choose another file with --db"
            )
        return 0
    row = connection.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(connection: sqlite3.Connection, path: Path, up_to: int = SCHEMA_VERSION) -> int:
    """Apply the migrations after the database's version, up to `up_to`, in one transaction."""
    version = current_version(connection, path)
    _refuse_newer(version, path)
    if version >= up_to:
        return version
    connection.execute("BEGIN IMMEDIATE")  # the write lock: two processes never migrate at once
    try:
        version = current_version(connection, path)  # another process may have migrated meanwhile
        connection.execute(_VERSION_TABLE)
        for migration in MIGRATIONS:
            if version < migration.version <= up_to:
                _apply(connection, migration)
                version = migration.version
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return version


def _apply(connection: sqlite3.Connection, migration: Migration) -> None:
    for step in migration.steps:
        if callable(step):
            step(connection)
        else:
            connection.execute(step)
    connection.execute(
        "INSERT INTO schema_version (version, applied_at, description) VALUES (?, ?, ?)",
        (migration.version, datetime.now(timezone.utc).isoformat(timespec="seconds"), migration.description),
    )


def _refuse_newer(version: int, path: Path) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema version {version}, newer than this hwfit understands ({SCHEMA_VERSION}); "
            "upgrade hwfit (pip install -U hwfit) or choose another file with --db"
        )
