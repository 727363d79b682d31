"""The results store against real SQLite files: round trips, replacement, resume lookup, export."""

import csv
import io
import json
import math
import sqlite3

import numpy as np
import pytest

from hwfit.store import (
    LatencyStats,
    Measurement,
    StoreError,
    open_store,
    to_frame,
)


def _same(left: Measurement, right: Measurement) -> bool:
    """Exact equality, NaN equal to NaN, int distinct from float (JSON keeps 1 and 1.0 apart)."""
    return json.dumps(left.to_dict()) == json.dumps(right.to_dict())


def _start(store, sample, model_hash="hash-a", sweep_key="sweep-1", name="minilm"):
    return store.start_run(name, f"builtin:{name}", model_hash, sweep_key, {"batch": [1, 8]}, sample.environment())


def test_full_and_failed_measurements_round_trip(store, sample, db_path):
    run = _start(store, sample)
    full, failed = sample.full_measurement(), sample.failed_measurement()
    store.record(run.id, full)
    store.record(run.id, failed)
    with open_store(db_path) as reopened:
        got = reopened.measurements(run.id)
    assert [m.variant_key for m in got] == [full.variant_key, failed.variant_key]
    assert _same(got[0], full) and _same(got[1], failed)
    assert math.isnan(got[0].max_abs_error)
    assert type(got[0].latency.count) is int and got[0].peak_rss_delta_bytes == 123_456_789_012
    assert got[1].latency is None and got[1].reason.startswith("calibration failed")


def test_metrics_are_long_rows_with_unit_and_how(store, sample, db_path):
    run = _start(store, sample)
    store.record(run.id, sample.full_measurement())
    rows = sqlite3.connect(db_path).execute("SELECT name, value, unit, how FROM measurements").fetchall()
    by_name = {name: (value, unit, how) for name, value, unit, how in rows}
    assert by_name["latency.p99_ms"] == (2.25, "ms", "measured")
    assert by_name["energy_j_per_sample"][2] == "estimated"
    assert by_name["max_abs_error"][0] is None  # NaN
    assert "reason" not in by_name


def test_numpy_values_are_stored_as_plain_numbers(store, sample):
    run = _start(store, sample)
    measurement = sample.full_measurement()
    measurement.samples_per_s = np.float32(10.5)
    measurement.peak_rss_delta_bytes = np.int64(42)
    measurement.details = {"samples": np.array([1.5, 2.5]), "count": np.int64(3)}
    store.record(run.id, measurement)
    got = store.measurements(run.id)[0]
    assert got.samples_per_s == 10.5 and got.peak_rss_delta_bytes == 42
    assert got.details == {"samples": [1.5, 2.5], "count": 3}


def test_bad_values_are_refused_before_writing(store, sample):
    run = _start(store, sample)
    bad = sample.full_measurement()
    bad.samples_per_s = "fast"
    with pytest.raises(StoreError, match="samples_per_s"):
        store.record(run.id, bad)
    with pytest.raises(StoreError, match="status 'great'"):
        store.record(run.id, Measurement("k", {}, "great"))
    with pytest.raises(StoreError, match="details of 'k'"):
        store.record(run.id, Measurement("k", {}, "ok", details={"x": object()}))
    assert store.measurements(run.id) == []


def test_rerecording_a_variant_replaces_it_in_place(store, sample):
    run = _start(store, sample)
    store.record(run.id, sample.full_measurement("a"))
    store.record(run.id, sample.full_measurement("b"))
    store.record(run.id, sample.failed_measurement("a"))
    got = store.measurements(run.id)
    assert [(m.variant_key, m.status) for m in got] == [("a", "failed"), ("b", "ok")]
    assert got[0].latency is None  # the old metrics went with the old point
    assert store.get_run(run.id).point_count == 2
    assert store.check() == []


def test_measured_keys(store, sample):
    run, other = _start(store, sample), _start(store, sample)
    store.record(run.id, sample.full_measurement("a"))
    store.record(run.id, sample.failed_measurement("b"))
    store.record(other.id, sample.full_measurement("c"))
    assert store.measured_keys(run.id) == {"a", "b"}
    assert store.measured_keys(run.id, statuses=("ok",)) == {"a"}
    assert store.measured_keys(other.id) == {"c"}


def test_resumable_run_lookup(store, sample):
    done = _start(store, sample)
    store.finish_run(done.id, "complete")
    assert store.find_resumable_run("hash-a", "sweep-1") is None  # complete runs are not resumed

    interrupted = _start(store, sample)
    store.finish_run(interrupted.id, "interrupted", note="Ctrl-C")
    _start(store, sample, sweep_key="sweep-2")  # different sweep: never the answer
    _start(store, sample, model_hash="hash-b")  # different model: never the answer
    found = store.find_resumable_run("hash-a", "sweep-1")
    assert found is not None and found.id == interrupted.id and found.note == "Ctrl-C"
    assert store.find_resumable_run("hash-a", "sweep-3") is None


def test_recording_into_a_resumed_run_marks_it_running(store, sample):
    run = _start(store, sample)
    store.finish_run(run.id, "interrupted")
    store.record(run.id, sample.full_measurement())
    resumed = store.get_run(run.id)
    assert resumed.status == "running" and resumed.finished_at is None
    store.finish_run(run.id, "complete")
    assert store.get_run(run.id).status == "complete"


def test_runs_list_newest_first_and_filter(store, sample):
    first = _start(store, sample, name="minilm", model_hash="aaaa1111")
    second = _start(store, sample, name="cnn", model_hash="bbbb2222")
    store.record(second.id, sample.full_measurement("x"))
    store.record(second.id, sample.failed_measurement("y"))
    assert [run.id for run in store.list_runs()] == [second.id, first.id]
    assert [run.id for run in store.list_runs(model="MiniLM")] == [first.id]
    assert [run.id for run in store.list_runs(model="bbbb")] == [second.id]
    assert store.list_runs(model="%") == []  # LIKE wildcards are literal
    assert len(store.list_runs(limit=1)) == 1
    listed = store.list_runs(model="cnn")[0]
    assert listed.point_count == 2 and listed.status_counts == {"ok": 1, "failed": 1}
    assert listed.environment == sample.environment() and listed.args == {"batch": [1, 8]}


def test_identical_environments_share_one_row(store, sample, db_path):
    _start(store, sample)
    _start(store, sample)
    store.start_run("m", "s", "h", "k", {}, sample.environment(numpy="1.26.4"))
    count = sqlite3.connect(db_path).execute("SELECT COUNT(*) FROM environments").fetchone()[0]
    assert count == 2


def test_missing_run_names_the_id_and_recent_ones(store, sample):
    run = _start(store, sample)
    with pytest.raises(StoreError, match=rf"no run 999 .*newest are {run.id}.*hwfit results"):
        store.get_run(999)
    with pytest.raises(StoreError, match="no run 999"):
        store.record(999, sample.full_measurement())


def test_measurements_for_model(store, sample):
    old = _start(store, sample)
    store.record(old.id, sample.full_measurement("a"))
    new = _start(store, sample)
    store.record(new.id, sample.full_measurement("a"))
    store.record(new.id, sample.failed_measurement("b"))
    other = _start(store, sample, model_hash="hash-b")
    store.record(other.id, sample.full_measurement("z"))
    pairs = store.measurements_for_model("hash-a")
    assert [(run.id, m.variant_key) for run, m in pairs] == [(new.id, "a"), (old.id, "a")]
    failed = store.measurements_for_model("hash-a", status=("failed",))
    assert [(run.id, m.variant_key) for run, m in failed] == [(new.id, "b")]


def test_run_extra(store, sample, db_path):
    run = _start(store, sample)
    store.set_run_extra(run.id, "ceilings", [{"metric": "matmul_flops", "value": 1.5e11}])
    store.set_run_extra(run.id, "note", "quiet machine")
    with open_store(db_path) as reopened:
        assert reopened.run_extra(run.id) == {
            "ceilings": [{"metric": "matmul_flops", "value": 1.5e11}],
            "note": "quiet machine",
        }


def test_export_json_and_csv(store, sample):
    run = _start(store, sample)
    store.record(run.id, sample.full_measurement())
    store.record(run.id, sample.failed_measurement())
    store.set_run_extra(run.id, "ceilings", {"cpu": 1.0})
    document = json.loads(store.export(run.id, "json"))
    assert document["schema"] == "hwfit.results/1"
    assert document["run"]["id"] == run.id and document["run"]["environment"]["cpu_model"] == "Test CPU @ 2.0GHz"
    assert document["extra"] == {"ceilings": {"cpu": 1.0}}
    assert _same(Measurement.from_dict(document["measurements"][0]), sample.full_measurement())

    rows = list(csv.DictReader(io.StringIO(store.export(run.id, "csv"))))
    assert len(rows) == 2
    assert rows[0]["run_id"] == str(run.id) and rows[0]["latency.p99_ms"] == "2.25"
    assert rows[0]["variant.knobs.graph_opt"] == "all" and rows[1]["variant.knobs.graph_opt"] == ""
    assert rows[1]["status"] == "failed" and rows[1]["reason"].startswith("calibration failed")
    with pytest.raises(StoreError, match="choose json or csv"):
        store.export(run.id, "xml")


def test_to_frame(sample):
    try:
        import pandas  # noqa: F401 - imported only to check that it is installed and imports
    except ImportError:
        with pytest.raises(StoreError, match="pip install pandas"):
            to_frame([sample.full_measurement()])
        return
    frame = to_frame([sample.full_measurement(), sample.failed_measurement()])
    assert len(frame) == 2 and frame["latency.p50_ms"].iloc[0] == pytest.approx(1.2345678901234567)


def test_latency_stats_are_all_or_nothing(store, sample):
    run = _start(store, sample)
    measurement = sample.full_measurement()
    measurement.latency = LatencyStats(1, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0)
    store.record(run.id, measurement)
    assert store.measurements(run.id)[0].latency == measurement.latency


def test_runs_csv_header_is_the_same_with_and_without_runs(store, sample):
    from hwfit.store import runs_to_csv

    _start(store, sample)
    with_runs = runs_to_csv(store.list_runs()).splitlines()
    assert runs_to_csv([]).splitlines() == with_runs[:1] and len(with_runs) == 2


def test_rounds_round_trip_in_order_and_are_replaced_with_their_point(store, sample, db_path):
    run = store.start_run("m", "m.onnx", "hash", "sweep", {}, sample.environment())
    measurement = sample.full_measurement()
    measurement.rounds = [
        {"p50_ms": 1.25, "samples_per_s": 800.0, "accuracy_loss": 0.0},
        {"p50_ms": 1.5, "samples_per_s": 700.0},
        {"p50_ms": 1.0, "samples_per_s": 900.0, "energy_j_per_sample": 0.01},
    ]
    store.record(run.id, measurement)
    (loaded,) = store.measurements(run.id)
    assert loaded.rounds == measurement.rounds
    rows = sqlite3.connect(db_path).execute("SELECT COUNT(*) FROM rounds").fetchone()[0]
    assert rows == 8
    measurement.rounds = measurement.rounds[:1]
    store.record(run.id, measurement)
    assert store.measurements(run.id)[0].rounds == measurement.rounds
    assert sqlite3.connect(db_path).execute("SELECT COUNT(*) FROM rounds").fetchone()[0] == 3
    exported = json.loads(store.export(run.id, "json"))["measurements"][0]
    assert exported["rounds"] == measurement.rounds


def test_a_round_with_an_unknown_metric_is_refused(store, sample):
    run = store.start_run("m", "m.onnx", "hash", "sweep", {}, sample.environment())
    measurement = sample.full_measurement()
    measurement.rounds = [{"p50_ms": 1.0, "latency_p50": 1.0}]
    with pytest.raises(StoreError, match="unknown metric 'latency_p50'"):
        store.record(run.id, measurement)
    assert store.measurements(run.id) == []


def test_round_sample_keeps_measured_energy_only(sample):
    measurement = sample.full_measurement()
    measurement.energy_how = "estimated"
    figures = measurement.round_sample()
    assert "energy_j_per_sample" not in figures
    assert figures["p50_ms"] == measurement.latency.p50_ms and figures["samples_per_s"] == measurement.samples_per_s
    measurement.energy_how = "measured"
    assert "energy_j_per_sample" in measurement.round_sample()
