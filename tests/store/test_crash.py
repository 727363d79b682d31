"""A writer killed mid-sweep leaves a valid store; a reader works while a writer writes."""

import os
import signal
import subprocess
import sys
import time

import pytest

from hwfit.store import open_store


def _start_writer(writer_script, db_path, count=0):
    return subprocess.Popen(
        [sys.executable, str(writer_script), str(db_path), str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_lines(process, count, timeout_s=20.0):
    lines, deadline = [], time.monotonic() + timeout_s
    while len(lines) < count:
        assert time.monotonic() < deadline, f"writer too slow: {lines[-3:]} {process.poll()}"
        line = process.stdout.readline()
        assert line, f"writer exited early: {process.stderr.read()}"
        lines.append(line.strip())
    return lines


def test_store_after_sigkill_is_valid_and_resumable(writer_script, db_path):
    process = _start_writer(writer_script, db_path)
    lines = _read_lines(process, 41)  # "run N" and 40 keys: the writer is in its loop, mid-transaction or between
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)  # reaped, so its pid is gone
    lines += process.stdout.read().splitlines()  # what it printed after our last read, before it died
    run_id = int(lines[0].split()[1])
    printed = set(lines[1:])

    with open_store(db_path) as store:
        assert store.check() == []  # integrity_check, foreign keys, every point has all its metrics
        recorded = store.measured_keys(run_id)
        assert printed <= recorded  # every point it reported as recorded is there
        assert len(recorded) <= len(printed) + 1  # at most the one committed just before the kill
        measurements = store.measurements(run_id)
        assert {m.variant_key for m in measurements} == recorded
        for measurement in measurements:
            if measurement.status == "ok":
                assert measurement.latency is not None and measurement.wall_s == 12.75
        run = store.get_run(run_id)
        assert run.status == "interrupted"  # its writer is dead, though it never said so
        assert store.find_resumable_run(run.model_hash, run.sweep_key).id == run_id


def test_reader_sees_consistent_points_while_a_writer_writes(writer_script, db_path):
    open_store(db_path).close()  # created and migrated before the writer starts
    process = _start_writer(writer_script, db_path, count=1000)
    run_id = int(_read_lines(process, 1)[0].split()[1])
    seen_counts = []
    try:
        with open_store(db_path) as reader:
            while process.poll() is None or not seen_counts:
                run = reader.get_run(run_id)
                measurements = reader.measurements(run_id)
                assert run.point_count <= len(measurements)  # read later, so never fewer
                for measurement in measurements:
                    assert measurement.status == "failed" or measurement.latency is not None
                seen_counts.append(len(measurements))
                assert reader.check() == []
    finally:
        process.wait(timeout=30)
    assert process.returncode == 0, process.stderr.read()
    assert seen_counts == sorted(seen_counts)  # never a point lost between reads
    assert len(set(seen_counts)) >= 2, seen_counts  # the reads really overlapped the writes
    with open_store(db_path) as store:
        assert store.get_run(run_id).status == "complete"
        assert len(store.measurements(run_id)) == 1000


class _InterruptingConnection:
    """The real connection, but Ctrl-C arrives while a point's metrics are being inserted."""

    def __init__(self, connection):
        self._connection = connection

    def executemany(self, *args):
        raise KeyboardInterrupt

    def __getattr__(self, name):
        return getattr(self._connection, name)


def test_ctrl_c_inside_a_write_rolls_the_point_back(store, sample):
    run = store.start_run("m", "s", "h", "k", {}, sample.environment())
    store.record(run.id, sample.full_measurement("kept"))
    real = store._connection
    store._connection = _InterruptingConnection(real)
    try:
        with pytest.raises(KeyboardInterrupt):
            store.record(run.id, sample.full_measurement("half"))
    finally:
        store._connection = real
    assert not real.in_transaction
    assert store.measured_keys(run.id) == {"kept"}  # the point row went back with its metrics
    assert store.check() == []
    store.record(run.id, sample.full_measurement("after"))  # and the store is still writable
    assert store.measured_keys(run.id) == {"kept", "after"}
