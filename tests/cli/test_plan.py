"""`hwfit plan`: from a store of this machine's measurements (hand-made, recorded as a real run)
to plan.yaml, the report and a Triton repository; and one real run that measures."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from hwfit.cli import app
from hwfit.plan import load_plan
from tests.plan._points import curve_points


@pytest.fixture(scope="module")
def cnn():
    from hwfit.models import load_model

    return load_model("cnn")


def _store_with_points(path, model, points):
    from hwfit.profile.environment import capture_environment
    from hwfit.store import open_store

    with open_store(path) as store:
        run = store.start_run(model.name, model.source, model.content_hash, "test", {}, capture_environment())
        for point in points:
            store.record(run.id, point)
        store.finish_run(run.id, "complete")
    return run.id


def _slo(tmp_path, **fields):
    base = {"latency_p99_ms": 50, "throughput_rps": 100, "objective": "cost", "devices": {"cpu": {"count": 1}}}
    path = tmp_path / "slo.yaml"
    path.write_text(yaml.safe_dump({**base, **fields}))
    return str(path)


def _cnn_points():
    return (
        curve_points("ort", "fp32", 0.3, 0.05, batches=(1, 2, 4, 8, 16, 32, 64), top1=1.0, cosine=None, joules=0.01)
        + curve_points("ort", "int8-dynamic", 0.25, 0.03, batches=(1, 2, 4, 8, 16, 32, 64), top1=0.99, cosine=None)
        + curve_points("torch", "fp32", 0.6, 0.08, batches=(1, 2, 4, 8, 16, 32, 64), top1=1.0, cosine=None)
    )


def test_plan_from_stored_points_writes_plan_report_and_triton_repository(tmp_path, cnn):
    db = tmp_path / "results.db"
    run_id = _store_with_points(db, cnn, _cnn_points())
    out, report, triton = tmp_path / "plan.yaml", tmp_path / "report.html", tmp_path / "repo"
    result = CliRunner().invoke(
        app,
        [
            "plan",
            "cnn",
            "--slo",
            _slo(tmp_path),
            "--no-measure",
            "--db",
            str(db),
            "-o",
            str(out),
            "--report",
            str(report),
            "--export",
            "triton",
            "--export-dir",
            str(triton),
        ],
    )
    assert result.exit_code == 0, result.output
    plan = load_plan(out)
    assert plan.feasible and plan.pools[0].backend == "ort" and plan.pools[0].precision == "int8-dynamic"
    assert plan.search.run_ids == [run_id] and plan.search.measured == 0
    assert "Serve cnn with" in result.output and "plan:" in result.output
    html = report.read_text()
    assert "<svg" in html and plan.answer.split(":")[0] in html
    config = (triton / "cnn" / "config.pbtxt").read_text()
    primary = plan.pools[0]
    assert f"max_batch_size: {primary.max_batch_size}" in config
    assert f"count: {primary.replicas_per_device} kind: KIND_CPU" in config
    assert f"max_queue_delay_microseconds: {int(round(primary.max_queue_delay_ms * 1000))}" in config
    assert (triton / "cnn" / "1" / "model.onnx").stat().st_size > 1000
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as model_config

    parsed = text_format.Parse(config, model_config.ModelConfig())  # Triton's own schema accepts it
    assert parsed.max_batch_size == primary.max_batch_size and parsed.input[0].dims[:] == [1, 8, 8]


def test_a_three_line_slo_plans_for_this_machine(tmp_path, cnn):
    db = tmp_path / "results.db"
    _store_with_points(db, cnn, _cnn_points())
    slo = tmp_path / "slo.yaml"
    slo.write_text("latency_p99_ms: 50\nthroughput_rps: 100\nobjective: cost\n")
    out = tmp_path / "plan.yaml"
    result = CliRunner().invoke(
        app, ["plan", "cnn", "--slo", str(slo), "--no-measure", "--db", str(db), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    plan = load_plan(out)
    assert plan.feasible and "cpu" in plan.slo.devices
    assert "lists no devices" in plan.answer and "hwfit devices" in " ".join(result.output.split())


def test_infeasible_slo_exits_3_and_says_the_nearest_target(tmp_path, cnn):
    db = tmp_path / "results.db"
    _store_with_points(db, cnn, _cnn_points())
    result = CliRunner().invoke(
        app,
        [
            "plan",
            "cnn",
            "--slo",
            _slo(tmp_path, latency_p99_ms=0.1),
            "--no-measure",
            "--db",
            str(db),
            "-o",
            str(tmp_path / "plan.yaml"),
        ],
    )
    assert result.exit_code == 3, result.output
    assert "infeasible" in result.output and "not reachable" in result.output
    assert not load_plan(tmp_path / "plan.yaml").feasible


def test_cost_slo_on_an_unpriced_gpu_names_the_field_to_set(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "plan",
            "cnn",
            "--slo",
            _slo(tmp_path, devices={"cuda:7": {"count": 1}}),
            "--db",
            str(tmp_path / "r.db"),
            "--no-measure",
        ],
    )
    assert result.exit_code != 0
    assert "price_per_hour" in str(result.exception) and "cuda:7" in str(result.exception)


def test_bad_slo_file_names_the_field(tmp_path):
    path = tmp_path / "slo.yaml"
    path.write_text("latency_p99_ms: -5\nthroughput_rps: 10\nobjective: speed\ndevices: {cpu: {count: 1}}\n")
    result = CliRunner().invoke(
        app, ["plan", "cnn", "--slo", str(path), "--no-measure", "--db", str(tmp_path / "r.db")]
    )
    assert result.exit_code != 0
    message = str(result.exception)
    assert "latency_p99_ms" in message and "objective" in message and "cost, energy, latency, throughput" in message


@pytest.mark.timeout(300)
def test_plan_measures_through_the_profiler_within_its_budget(tmp_path):
    db = tmp_path / "results.db"
    result = CliRunner().invoke(
        app,
        [
            "plan",
            "cnn",
            "--slo",
            _slo(tmp_path, latency_p99_ms=200, throughput_rps=20),
            "--db",
            str(db),
            "-o",
            str(tmp_path / "plan.yaml"),
            "--budget",
            "3",
            "--point-seconds",
            "0.5",
            "--json",
        ],
    )
    assert result.exit_code in (0, 3), result.output
    plan = json.loads(result.stdout)
    assert plan["search"]["measured"] == 3 and plan["search"]["grid_size"] >= 100
    assert "budget is spent" in plan["search"]["method"]
    from hwfit.store import open_store

    with open_store(db) as store:
        runs = store.list_runs()
        assert any(run.args.get("command") == "plan" for run in runs)
        measured = [m for run in runs for m in store.measurements(run.id)]
    # the 3 search points and the naive baseline (PyTorch eager fp32 at batch 1)
    assert len(measured) == 4 and any(m.variant_key.startswith("torch/cpu/fp32/b1") for m in measured)
