"""The results database: one SQLite file (WAL mode) holding runs, their points and metrics.

Each write is one transaction, so Ctrl-C or a kill leaves either the whole point or none of it.
WAL lets `hwfit results` read while `hwfit profile` writes.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hwfit.core import USABLE_POINT_STATUSES, cache_dir
from hwfit.store import export as _export
from hwfit.store._errors import StoreError
from hwfit.store.metrics import apply_rows, metric_rows
from hwfit.store.records import (
    ROUND_METRICS,
    Environment,
    Measurement,
    Run,
    check_point_status,
    check_run_status,
    hostname_hash,
)
from hwfit.store.schema import migrate

BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another writer's transaction to end

_RUN_COLUMNS = """
    runs.id, runs.created_at, runs.finished_at, runs.status, runs.model_name, runs.model_source,
    runs.model_hash, runs.sweep_key, runs.args, runs.note, runs.writer_pid, runs.writer_host,
    environments.hwfit_version, environments.hwfit_commit, environments.python, environments.numpy,
    environments.onnxruntime, environments.torch, environments.openvino, environments.cuda,
    environments.nvidia_driver, environments.cpu_model, environments.gpu_names,
    environments.hostname_hash, environments.extra
"""
_RUN_SELECT = f"SELECT {_RUN_COLUMNS} FROM runs JOIN environments ON environments.id = runs.environment_id"
_ENV_FIELDS = (
    "hwfit_version",
    "hwfit_commit",
    "python",
    "numpy",
    "onnxruntime",
    "torch",
    "openvino",
    "cuda",
    "nvidia_driver",
    "cpu_model",
    "gpu_names",
    "hostname_hash",
    "extra",
)
_POINT_COLUMNS = (
    "id, variant_key, status, reason, variant, roofline_bound, energy_how, energy_note, started_at, details"
)


def default_db_path() -> Path:
    """~/.cache/hwfit/results.db, or results.db under $HWFIT_CACHE."""
    return cache_dir() / "results.db"


def resolve_db_path(path: str | Path | None = None) -> Path:
    """The database a command means: the given path, else $HWFIT_DB, else default_db_path()."""
    if path is not None:
        return Path(path).expanduser()
    if os.environ.get("HWFIT_DB"):
        return Path(os.environ["HWFIT_DB"]).expanduser()
    return default_db_path()


def open_store(path: str | Path | None = None, create: bool = True) -> ResultsStore:
    """Open (and, with `create`, make) the results database, migrating it to this hwfit's schema."""
    db_path = resolve_db_path(path)
    if db_path.is_dir():
        raise StoreError(f"{db_path} is a folder; --db expects a database file such as {db_path / 'results.db'}")
    if not db_path.exists():
        if not create:
            raise StoreError(
                f"no results database at {db_path}; profile a model first or choose another file with --db"
            )
        db_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        connection = sqlite3.connect(str(db_path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as error:
        raise StoreError(f"cannot open results database {db_path}: {error}") from None
    try:
        _configure(connection)
        migrate(connection, db_path)
    except sqlite3.DatabaseError as error:
        connection.close()
        raise StoreError(
            f"{db_path} is not a readable hwfit results database ({error}); "
            "move it aside or choose another file with --db"
        ) from None
    except BaseException:
        connection.close()
        raise
    return ResultsStore(connection, db_path)


def _configure(connection: sqlite3.Connection) -> None:
    connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    # WAL: readers never block the writer; NORMAL sync is durable against a killed process
    # (only a power cut may lose the last transactions, never corrupt the file).
    connection.execute("PRAGMA journal_mode = WAL").fetchone()
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute("PRAGMA foreign_keys = ON")


class ResultsStore:
    """Runs, points and metrics in one SQLite file. Use as a context manager, or call close()."""

    def __init__(self, connection: sqlite3.Connection, path: Path):
        self._connection = connection
        self._connection.row_factory = sqlite3.Row
        self.path = path

    # --- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- runs ---------------------------------------------------------------------------------

    def start_run(
        self,
        model_name: str,
        model_source: str,
        model_hash: str,
        sweep_key: str,
        args: dict,
        environment: Environment,
    ) -> Run:
        """Create a run in status "running", owned by this process."""
        args_json = _dumps(args, "run args")
        with self._write() as sql:
            environment_id = self._environment_id(sql, environment)
            cursor = sql.execute(
                "INSERT INTO runs (created_at, status, model_name, model_source, model_hash, sweep_key, args,"
                " environment_id, writer_pid, writer_host) VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _now(),
                    model_name,
                    model_source,
                    model_hash,
                    sweep_key,
                    args_json,
                    environment_id,
                    os.getpid(),
                    hostname_hash(),
                ),
            )
            run_id = cursor.lastrowid
        return self.get_run(run_id)

    def find_resumable_run(self, model_hash: str, sweep_key: str) -> Run | None:
        """The newest unfinished run of this model and sweep, unless another live process is writing it."""
        with self._read() as sql:
            row = sql.execute(
                f"{_RUN_SELECT} WHERE runs.model_hash = ? AND runs.sweep_key = ? AND runs.status != 'complete'"
                " ORDER BY runs.id DESC LIMIT 1",
                (model_hash, sweep_key),
            ).fetchone()
            if row is None:
                return None
            run = self._run_from_row(sql, row)
        if run.status == "running" and row["writer_pid"] != os.getpid():
            return None  # its writer is alive: resuming it too would record every point twice
        return run

    def finish_run(self, run_id: int, status: str, note: str | None = None) -> None:
        """End a run: "complete", "interrupted" or "failed"; a note replaces the old one if given."""
        check_run_status(status)
        if status == "running":
            raise StoreError("finish_run takes 'complete', 'interrupted' or 'failed', not 'running'")
        with self._write() as sql:
            self._require_run(sql, run_id)
            sql.execute(
                "UPDATE runs SET status = ?, finished_at = ?, note = COALESCE(?, note) WHERE id = ?",
                (status, _now(), note, run_id),
            )

    def list_runs(self, model: str | None = None, limit: int = 50) -> list[Run]:
        """Newest first; `model` matches the model name (any case) or a prefix of its content hash."""
        query, params = _RUN_SELECT, []
        if model:
            query += " WHERE lower(runs.model_name) = lower(?) OR runs.model_hash LIKE ? ESCAPE '\\'"
            params += [model, _like_prefix(model)]
        query += " ORDER BY runs.id DESC LIMIT ?"
        params.append(int(limit))
        with self._read() as sql:
            return [self._run_from_row(sql, row) for row in sql.execute(query, params).fetchall()]

    def get_run(self, run_id: int) -> Run:
        """One run; a StoreError naming the id and the newest ids if there is none."""
        with self._read() as sql:
            row = sql.execute(f"{_RUN_SELECT} WHERE runs.id = ?", (run_id,)).fetchone()
            if row is None:
                raise self._no_such_run(sql, run_id)
            return self._run_from_row(sql, row)

    def set_run_extra(self, run_id: int, key: str, value: Any) -> None:
        """Attach a JSON-serializable value to a run under `key`, e.g. "ceilings" of the machine."""
        with self._write() as sql:
            extra = self._run_extra(sql, run_id)
            extra[key] = value
            sql.execute("UPDATE runs SET extra = ? WHERE id = ?", (_dumps(extra, f"run extra {key!r}"), run_id))

    def run_extra(self, run_id: int) -> dict:
        with self._read() as sql:
            return self._run_extra(sql, run_id)

    # --- points -------------------------------------------------------------------------------

    def record(self, run_id: int, measurement: Measurement) -> None:
        """Store one point and all its metrics in one transaction; the same variant_key replaces.

        Recording into a run also marks it "running" by this process (a resumed run is live again).
        """
        check_point_status(measurement.status, measurement.variant_key)
        rows = metric_rows(measurement)
        variant_json = _dumps(measurement.variant, f"variant of {measurement.variant_key!r}")
        details_json = _dumps(measurement.details, f"details of {measurement.variant_key!r}")
        point = (
            measurement.status,
            measurement.reason,
            variant_json,
            measurement.roofline_bound,
            measurement.energy_how,
            measurement.energy_note,
            measurement.started_at,
            details_json,
            len(rows),
        )
        with self._write() as sql:
            self._require_run(sql, run_id)
            self._claim_run(sql, run_id)
            point_id = self._upsert_point(sql, run_id, measurement.variant_key, point)
            sql.executemany(
                "INSERT INTO measurements (point_id, name, value, unit, how) VALUES (?, ?, ?, ?, ?)",
                [(point_id, *row) for row in rows],
            )
            sql.executemany(
                "INSERT INTO rounds (point_id, round, name, value) VALUES (?, ?, ?, ?)",
                _round_rows(point_id, measurement),
            )

    def measured_keys(self, run_id: int, statuses: tuple[str, ...] | None = None) -> set[str]:
        """Variant keys recorded in a run (of any status, or only of `statuses`)."""
        with self._read() as sql:
            self._require_run(sql, run_id)
            rows = sql.execute("SELECT variant_key, status FROM points WHERE run_id = ?", (run_id,)).fetchall()
        return {row["variant_key"] for row in rows if statuses is None or row["status"] in statuses}

    def measurements(self, run_id: int) -> list[Measurement]:
        """A run's points in the order they were first recorded."""
        with self._read() as sql:
            self._require_run(sql, run_id)
            return self._load_measurements(sql, "points.run_id = ?", (run_id,))

    def measurements_for_model(
        self, model_hash: str, status: tuple[str, ...] = USABLE_POINT_STATUSES
    ) -> list[tuple[Run, Measurement]]:
        """Every point of every run of this model with one of `status`: newest run first."""
        marks = ", ".join("?" for _ in status)
        with self._read() as sql:
            rows = sql.execute(
                f"{_RUN_SELECT} WHERE runs.model_hash = ? ORDER BY runs.id DESC", (model_hash,)
            ).fetchall()
            pairs = []
            for row in rows:
                run = self._run_from_row(sql, row)
                found = self._load_measurements(
                    sql, f"points.run_id = ? AND points.status IN ({marks})", (run.id, *status)
                )
                pairs.extend((run, measurement) for measurement in found)
        return pairs

    # --- training experiments -----------------------------------------------------------------

    def record_train_experiments(self, run_id: int, rows: list[dict]) -> None:
        """Store a run's training experiments (dicts with the `train_experiments` columns but run_id
        and position), replacing any it had, in one transaction."""
        values = []
        for position, row in enumerate(rows):
            values.append(
                (
                    run_id,
                    position,
                    row["name"],
                    row["kind"],
                    row["status"],
                    row["reason"],
                    _dumps(row.get("changes", {}), f"changes of {row['name']!r}"),
                    row.get("code", ""),
                    row.get("step_ms"),
                    row.get("samples_per_s"),
                    row.get("speedup"),
                    None if row.get("loss_ok") is None else int(bool(row["loss_ok"])),
                    row.get("peak_memory_bytes"),
                    _dumps(row.get("details", {}), f"details of {row['name']!r}"),
                )
            )
        with self._write() as sql:
            self._require_run(sql, run_id)
            sql.execute("DELETE FROM train_experiments WHERE run_id = ?", (run_id,))
            sql.executemany(f"INSERT INTO train_experiments VALUES ({', '.join('?' * 14)})", values)

    def train_experiments(self, run_id: int) -> list[dict]:
        """A run's training experiments in the order they were tried (empty for other runs)."""
        with self._read() as sql:
            self._require_run(sql, run_id)
            rows = sql.execute(
                "SELECT * FROM train_experiments WHERE run_id = ? ORDER BY position", (run_id,)
            ).fetchall()
        found = []
        for row in rows:
            item = dict(row)
            item["changes"] = json.loads(item["changes"])
            item["details"] = json.loads(item["details"])
            item["loss_ok"] = None if item["loss_ok"] is None else bool(item["loss_ok"])
            found.append(item)
        return found

    # --- export and checks --------------------------------------------------------------------

    def export(self, run_id: int, fmt: str) -> str:
        """The run as "json" (run, environment, extra, measurements) or "csv" (one row per point)."""
        if fmt not in ("json", "csv"):
            raise StoreError(f"export format {fmt!r} is not supported; choose json or csv")
        with self._read():
            run = self.get_run(run_id)
            measurements = self.measurements(run_id)
            extra = self.run_extra(run_id)
        if fmt == "json":
            return _export.run_to_json(run, extra, measurements)
        return _export.measurements_to_csv(measurements, run_id=run.id)

    def check(self) -> list[str]:
        """Problems found in the file (empty when sound): SQLite integrity, foreign keys, half points."""
        with self._read() as sql:
            problems = [row[0] for row in sql.execute("PRAGMA integrity_check") if row[0] != "ok"]
            problems += [f"dangling reference in {row[0]}" for row in sql.execute("PRAGMA foreign_key_check")]
            half = sql.execute(
                "SELECT points.id, points.metric_count, COUNT(measurements.name) AS found FROM points"
                " LEFT JOIN measurements ON measurements.point_id = points.id GROUP BY points.id"
                " HAVING found != points.metric_count"
            ).fetchall()
        problems += [f"point {row[0]} has {row[2]} of its {row[1]} metrics" for row in half]
        return problems

    # --- internals ----------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken with the write lock up front; rolled back on any exception."""
        with self._sql_errors():
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
                self._connection.execute("COMMIT")
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read snapshot: several queries see one state even while another process writes."""
        if self._connection.in_transaction:
            yield self._connection
            return
        with self._sql_errors():
            self._connection.execute("BEGIN")
            try:
                yield self._connection
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    @contextmanager
    def _sql_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                raise StoreError(
                    f"results database {self.path} stayed locked by another writer for over {BUSY_TIMEOUT_S:.0f} s; "
                    "wait for the other hwfit profile to finish or use another file with --db"
                ) from None
            raise StoreError(f"results database {self.path}: {error}") from None
        except sqlite3.Error as error:
            raise StoreError(f"results database {self.path}: {error}") from None

    def _environment_id(self, sql: sqlite3.Connection, environment: Environment) -> int:
        key = environment.key()
        row = sql.execute("SELECT id FROM environments WHERE key = ?", (key,)).fetchone()
        if row is not None:
            return row[0]
        data = environment.to_dict()
        data["gpu_names"] = json.dumps(data["gpu_names"])
        data["extra"] = _dumps(data["extra"], "environment extra")
        columns = ", ".join(_ENV_FIELDS)
        marks = ", ".join("?" for _ in _ENV_FIELDS)
        cursor = sql.execute(
            f"INSERT INTO environments (key, {columns}) VALUES (?, {marks})",
            (key, *(data[name] for name in _ENV_FIELDS)),
        )
        return cursor.lastrowid

    def _run_from_row(self, sql: sqlite3.Connection, row: sqlite3.Row) -> Run:
        counts = {
            status: count
            for status, count in sql.execute(
                "SELECT status, COUNT(*) FROM points WHERE run_id = ? GROUP BY status", (row["id"],)
            )
        }
        environment = {name: row[name] for name in _ENV_FIELDS}
        environment["gpu_names"] = json.loads(environment["gpu_names"])
        environment["extra"] = json.loads(environment["extra"])
        return Run(
            id=row["id"],
            created_at=row["created_at"],
            finished_at=row["finished_at"],
            status=_effective_status(row["status"], row["writer_pid"], row["writer_host"]),
            model_name=row["model_name"],
            model_source=row["model_source"],
            model_hash=row["model_hash"],
            sweep_key=row["sweep_key"],
            args=json.loads(row["args"]),
            environment=Environment.from_dict(environment),
            note=row["note"],
            point_count=sum(counts.values()),
            status_counts=counts,
        )

    def _require_run(self, sql: sqlite3.Connection, run_id: int) -> None:
        if sql.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
            raise self._no_such_run(sql, run_id)

    def _no_such_run(self, sql: sqlite3.Connection, run_id: int) -> StoreError:
        recent = [str(row[0]) for row in sql.execute("SELECT id FROM runs ORDER BY id DESC LIMIT 5")]
        known = f"the newest are {', '.join(recent)}" if recent else "it has no runs yet"
        return StoreError(f"no run {run_id} in {self.path}: {known}; list them with `hwfit results`")

    def _run_extra(self, sql: sqlite3.Connection, run_id: int) -> dict:
        row = sql.execute("SELECT extra FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise self._no_such_run(sql, run_id)
        return json.loads(row[0])

    def _claim_run(self, sql: sqlite3.Connection, run_id: int) -> None:
        sql.execute(
            "UPDATE runs SET status = 'running', finished_at = NULL, writer_pid = ?, writer_host = ?"
            " WHERE id = ? AND (status != 'running' OR writer_pid IS NOT ? OR writer_host IS NOT ?)",
            (os.getpid(), hostname_hash(), run_id, os.getpid(), hostname_hash()),
        )

    def _upsert_point(self, sql: sqlite3.Connection, run_id: int, variant_key: str, point: tuple) -> int:
        """Insert the point, or overwrite it in place (keeping its position) and drop its old metrics."""
        row = sql.execute(
            "SELECT id FROM points WHERE run_id = ? AND variant_key = ?", (run_id, variant_key)
        ).fetchone()
        if row is None:
            cursor = sql.execute(
                "INSERT INTO points (status, reason, variant, roofline_bound, energy_how, energy_note, started_at,"
                " details, metric_count, run_id, variant_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*point, run_id, variant_key),
            )
            return cursor.lastrowid
        sql.execute(
            "UPDATE points SET status = ?, reason = ?, variant = ?, roofline_bound = ?, energy_how = ?,"
            " energy_note = ?, started_at = ?, details = ?, metric_count = ? WHERE id = ?",
            (*point, row[0]),
        )
        sql.execute("DELETE FROM measurements WHERE point_id = ?", (row[0],))
        sql.execute("DELETE FROM rounds WHERE point_id = ?", (row[0],))
        return row[0]

    def _load_measurements(self, sql: sqlite3.Connection, where: str, params: tuple) -> list[Measurement]:
        points = sql.execute(f"SELECT {_POINT_COLUMNS} FROM points WHERE {where} ORDER BY id", params).fetchall()
        metrics: dict[int, list[tuple[str, Any]]] = {row["id"]: [] for row in points}
        for point_id, name, value in sql.execute(
            f"SELECT measurements.point_id, measurements.name, measurements.value FROM measurements"
            f" JOIN points ON points.id = measurements.point_id WHERE {where}",
            params,
        ):
            metrics[point_id].append((name, value))
        rounds: dict[int, dict[int, dict[str, float]]] = {row["id"]: {} for row in points}
        for point_id, index, name, value in sql.execute(
            f"SELECT rounds.point_id, rounds.round, rounds.name, rounds.value FROM rounds"
            f" JOIN points ON points.id = rounds.point_id WHERE {where}",
            params,
        ):
            rounds[point_id].setdefault(index, {})[name] = value
        return [_measurement_from_row(row, metrics[row["id"]], rounds[row["id"]]) for row in points]


def _round_rows(point_id: int, measurement: Measurement) -> list[tuple[int, int, str, float]]:
    """(point_id, round, name, value) for every finite figure of every round; NaN and None are left out."""
    rows = []
    for index, sample in enumerate(measurement.rounds):
        for name, value in sample.items():
            if name not in ROUND_METRICS:
                raise StoreError(
                    f"measurement {measurement.variant_key!r}: round {index} has unknown metric {name!r}; "
                    f"expected one of {', '.join(ROUND_METRICS)}"
                )
            if value is not None and math.isfinite(float(value)):
                rows.append((point_id, index, name, float(value)))
    return rows


def _measurement_from_row(
    row: sqlite3.Row, metrics: list[tuple[str, Any]], rounds: dict[int, dict[str, float]]
) -> Measurement:
    values: dict[str, Any] = {
        "variant_key": row["variant_key"],
        "variant": json.loads(row["variant"]),
        "status": row["status"],
        "reason": row["reason"],
        "roofline_bound": row["roofline_bound"],
        "energy_how": row["energy_how"],
        "energy_note": row["energy_note"],
        "started_at": row["started_at"],
        "details": json.loads(row["details"]),
    }
    apply_rows(values, metrics)
    values["rounds"] = [rounds[index] for index in sorted(rounds)]
    return Measurement(**values)


def _effective_status(status: str, writer_pid: int | None, writer_host: str | None) -> str:
    """A "running" run whose writer died on this host (SIGKILL, OOM, power-off of a shell) is interrupted."""
    if status != "running" or writer_pid is None or writer_host != hostname_hash():
        return status
    return "running" if _pid_alive(writer_pid) else "interrupted"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


def _dumps(value: Any, what: str) -> str:
    """JSON text for a stored value; numpy scalars and arrays become plain numbers and lists."""
    try:
        return json.dumps(value, default=_plain)
    except (TypeError, ValueError) as error:
        raise StoreError(f"{what} cannot be stored as JSON: {error}") from None


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalar or array, without importing numpy
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON-serializable")


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
