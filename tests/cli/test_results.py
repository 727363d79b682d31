"""`hwfit results` through the real Typer app on a real database: list, show, export, errors."""

import csv
import io
import json
import math

import pytest
from typer.testing import CliRunner

import hwfit.cli.results  # noqa: F401 - registers the command on the app the test invokes

# Import only our command module so this test does not depend on other commands mid-edit.
from hwfit.cli._app import app
from hwfit.store import Environment, LatencyStats, Measurement, open_store

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


def _environment() -> Environment:
    return Environment(
        hwfit_version="0.1.0",
        hwfit_commit="0123456789abcdef",
        python="3.11.7",
        numpy="2.0.0",
        onnxruntime="1.18.0",
        torch=None,
        openvino=None,
        cuda=None,
        nvidia_driver=None,
        cpu_model="Test CPU @ 2.0GHz",
        gpu_names=(),
        hostname_hash="0123456789ab",
        extra={"hwfit_dirty": True},
    )


def _ok(key: str, p50_ms: float) -> Measurement:
    return Measurement(
        variant_key=key,
        variant={"backend": "ort", "device": "cpu", "precision": "fp32", "batch_size": 8, "threads": 2, "knobs": {}},
        status="ok",
        latency=LatencyStats(100, p50_ms, 1.5, 2.25, 3.0, 1.3, 0.1, 1.0, 3.5, 1.2, 1.27),
        samples_per_s=6480.0,
        peak_rss_delta_bytes=52_000_000,
        mfu_vs_measured=0.43,
        mfu_vs_spec=0.12,
        energy_j_per_sample=0.0123,
        energy_how="estimated",
        energy_note="TDP × latency",
        cosine_min=0.99991,
        max_abs_error=math.nan,
    )


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "results.db"
    with open_store(path) as store:
        first = store.start_run("minilm", "builtin:minilm", "aaaa1111", "sweep-1", {}, _environment())
        store.record(first.id, _ok("ort/cpu/fp32/b8/t2", 1.234))
        store.record(
            first.id,
            Measurement(
                "ort/cpu/int8-static/b8/t2", {"backend": "ort"}, "failed", reason="calibration failed: no inputs"
            ),
        )
        store.finish_run(first.id, "complete")
        second = store.start_run("cnn", "builtin:cnn", "bbbb2222", "sweep-1", {}, _environment())
        store.record(second.id, _ok("torch/cpu/fp32/b1/t1", 0.5))
        store.finish_run(second.id, "interrupted")
    return path


def test_list_runs(db):
    result = runner.invoke(app, ["results", "--db", str(db)], env=WIDE)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    minilm = next(line for line in lines if "minilm" in line)
    assert "complete" in minilm and "1/0/1" in minilm and "0.1.0 (0123456+dirty)" in minilm
    assert "Test CPU" in minilm
    assert result.stdout.index("cnn") < result.stdout.index("minilm")  # newest first


def test_list_filter_and_limit(db):
    result = runner.invoke(app, ["results", "--db", str(db), "--model", "minilm", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert [run["model_name"] for run in json.loads(result.stdout)["runs"]] == ["minilm"]
    result = runner.invoke(app, ["results", "--db", str(db), "--limit", "1", "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["model_name"] for row in rows] == ["cnn"] and rows[0]["points_ok"] == "1"


def test_show_one_run(db):
    result = runner.invoke(app, ["results", "1", "--db", str(db)], env=WIDE)
    assert result.exit_code == 0, result.output
    out = result.stdout
    row = next(line for line in out.splitlines() if "ort/cpu/fp32/b8/t2" in line)
    # ± is half the CI width, as the stop rule measures it.
    for cell in ("1.23 ±2.8%", "2.25", "6,480", "52", "43% / 12%", "0.0123 est.", "cos≥0.99991"):
        assert cell in row, (cell, row)
    assert "ort/cpu/int8-static/b8/t2: calibration failed: no inputs" in out
    assert "Environment" in out and "Test CPU @ 2.0GHz" in out and "1.18.0" in out


def test_export_json_is_the_whole_stdout(db):
    result = runner.invoke(app, ["results", "1", "--db", str(db), "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["run"]["model_name"] == "minilm"
    assert [m["variant_key"] for m in document["measurements"]] == ["ort/cpu/fp32/b8/t2", "ort/cpu/int8-static/b8/t2"]


def test_export_csv_has_header_and_one_row_per_measurement(db):
    result = runner.invoke(app, ["results", "1", "--db", str(db), "--format", "csv"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("run_id,variant_key,status") and len(lines) == 3
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["latency.p50_ms"] == "1.234" and rows[1]["reason"] == "calibration failed: no inputs"


def test_missing_run_names_it_and_how_to_list(db):
    result = runner.invoke(app, ["results", "999", "--db", str(db)])
    assert result.exit_code == 2
    assert "no run 999" in result.stderr and "hwfit results" in result.stderr
    assert result.stdout == ""


def test_explicit_missing_database_is_an_error(tmp_path):
    result = runner.invoke(app, ["results", "--db", str(tmp_path / "nope.db")])
    assert result.exit_code == 2 and "no results database at" in result.stderr
    assert not (tmp_path / "nope.db").exists()


def test_default_database_absent_means_no_runs_yet(tmp_path, monkeypatch):
    monkeypatch.setenv("HWFIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HWFIT_DB", raising=False)
    result = runner.invoke(app, ["results"])
    assert result.exit_code == 0 and "No runs yet" in result.stdout
    result = runner.invoke(app, ["results", "--format", "json"])
    assert json.loads(result.stdout)["runs"] == []


def test_bad_format_is_refused(db):
    result = runner.invoke(app, ["results", "1", "--db", str(db), "--format", "xml"])
    assert result.exit_code != 0 and "json or csv" in result.output


def test_help_has_an_example():
    result = runner.invoke(app, ["results", "--help"])
    assert result.exit_code == 0 and "hwfit results 12 --format csv" in result.stdout
