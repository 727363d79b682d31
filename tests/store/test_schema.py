"""Opening old, newer, foreign and corrupt database files."""

import sqlite3

import pytest

from hwfit.store import SCHEMA_VERSION, StoreError, open_store
from hwfit.store.schema import migrate


def _version_one_database(path):
    """A database as hwfit's first schema left it, with one run and one point of data."""
    connection = sqlite3.connect(path, isolation_level=None)
    assert migrate(connection, path, up_to=1) == 1
    connection.execute(
        "INSERT INTO environments (key, hwfit_version, hwfit_commit, python, numpy, onnxruntime, torch, openvino,"
        " cuda, nvidia_driver, cpu_model, gpu_names, hostname_hash, extra)"
        " VALUES ('k1', '0.0.9', NULL, '3.11.7', '1.26.0', NULL, NULL, NULL, NULL, NULL, 'Old CPU', '[]',"
        " 'aaaaaaaaaaaa', '{}')"
    )
    connection.execute(
        "INSERT INTO runs (created_at, finished_at, status, model_name, model_source, model_hash, sweep_key, args,"
        " environment_id, note) VALUES ('2025-01-01T00:00:00+00:00', NULL, 'interrupted', 'cnn', 'builtin:cnn',"
        " 'oldhash', 'sweep-old', '{}', 1, NULL)"
    )
    connection.execute(
        "INSERT INTO points (run_id, variant_key, status, reason, variant, details, metric_count)"
        " VALUES (1, 'ort/cpu/fp32/b1/t1', 'ok', NULL, '{\"backend\": \"ort\"}', '{}', 1)"
    )
    connection.execute(
        "INSERT INTO measurements (point_id, name, value, unit, how) VALUES (1, 'samples_per_s', 99.5, 'samples/s',"
        " 'measured')"
    )
    connection.close()


def test_version_one_database_is_migrated_and_keeps_its_data(db_path, sample):
    _version_one_database(db_path)
    with open_store(db_path) as store:
        run = store.get_run(1)
        assert (run.model_name, run.status, run.environment.cpu_model) == ("cnn", "interrupted", "Old CPU")
        assert store.measurements(1)[0].samples_per_s == 99.5
        assert store.measurements(1)[0].rounds == []  # the rounds table of migration 3 starts empty
        assert store.run_extra(1) == {}  # column added by migration 2
        assert store.find_resumable_run("oldhash", "sweep-old").id == 1
        new = store.start_run("cnn", "builtin:cnn", "oldhash", "sweep-old", {}, sample.environment())
        assert new.id == 2
    versions = [row[0] for row in sqlite3.connect(db_path).execute("SELECT version FROM schema_version")]
    assert versions == list(range(1, SCHEMA_VERSION + 1))


def test_a_failing_migration_leaves_the_old_version(db_path, monkeypatch):
    _version_one_database(db_path)
    from hwfit.store import schema

    broken = schema.Migration(SCHEMA_VERSION + 1, "broken", ("CREATE TABLE extra_table (x)", "NOT SQL"))
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, broken))
    connection = sqlite3.connect(db_path, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        schema.migrate(connection, db_path, up_to=SCHEMA_VERSION + 1)
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert "extra_table" not in tables and "writer_pid" not in {
        row[1] for row in connection.execute("PRAGMA table_info(runs)")
    }  # migration 2 rolled back too
    assert schema.current_version(connection, db_path) == 1


def test_newer_schema_is_refused_with_upgrade_advice(db_path):
    open_store(db_path).close()
    connection = sqlite3.connect(db_path)
    connection.execute("INSERT INTO schema_version VALUES (?, 'now', 'from the future')", (SCHEMA_VERSION + 1,))
    connection.commit()
    connection.close()
    with pytest.raises(StoreError, match=rf"{db_path}.*schema version {SCHEMA_VERSION + 1}.*upgrade hwfit"):
        open_store(db_path)


def test_corrupt_file_is_refused_naming_the_path(db_path):
    db_path.write_bytes(b"this is not a database, just some text " * 200)
    with pytest.raises(StoreError, match=rf"{db_path} is not a readable hwfit results database"):
        open_store(db_path)


def test_foreign_sqlite_file_is_refused(db_path):
    connection = sqlite3.connect(db_path)
    connection.execute("CREATE TABLE customers (name TEXT)")
    connection.commit()
    connection.close()
    with pytest.raises(StoreError, match="not an hwfit results database.*customers"):
        open_store(db_path)


def test_missing_file_without_create_and_folder_paths(tmp_path):
    with pytest.raises(StoreError, match="no results database at"):
        open_store(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()
    with pytest.raises(StoreError, match="is a folder"):
        open_store(tmp_path)


def test_wal_mode_and_pragmas(db_path):
    with open_store(db_path) as store:
        connection = store._connection
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert connection.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert connection.execute("PRAGMA busy_timeout").fetchone()[0] > 0


def test_default_path_and_env_override(tmp_path, monkeypatch):
    from hwfit.store import default_db_path

    monkeypatch.setenv("HWFIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HWFIT_DB", raising=False)
    assert default_db_path() == tmp_path / "cache" / "results.db"
    with open_store() as store:
        assert store.path == tmp_path / "cache" / "results.db"
    monkeypatch.setenv("HWFIT_DB", str(tmp_path / "nested" / "dir" / "mine.db"))
    with open_store() as store:
        assert store.path.exists()
