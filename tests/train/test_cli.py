"""`hwfit train profile|advise` through the real Typer app."""

import json

from typer.testing import CliRunner

import hwfit.cli.train  # noqa: F401 - registers the command on the app the test invokes
from hwfit.cli._app import app

runner = CliRunner()


def test_profile_json_has_the_breakdown_rates_and_utilisation(tmp_path):
    result = runner.invoke(
        app,
        [
            "train",
            "profile",
            "tests.train.factories:tiny",
            "--steps",
            "4",
            "--warmup",
            "1",
            "--no-ceiling",
            "--json",
            "--db",
            str(tmp_path / "r.db"),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    breakdown = data["breakdown"]
    assert set(breakdown["phases_ms"]) == {"data", "copy", "forward", "backward", "optimizer"}
    assert (
        sum(breakdown["phases_ms"].values()) + breakdown["rest_ms"] == breakdown["step_ms"]
        or abs(sum(breakdown["phases_ms"].values()) + breakdown["rest_ms"] - breakdown["step_ms"]) < 1e-9
    )
    assert data["utilisation"]["achieved_flops"] > 0
    assert data["run_id"] >= 1


def test_profile_table_and_trace(tmp_path):
    trace = tmp_path / "trace.json"
    result = runner.invoke(
        app,
        [
            "train",
            "profile",
            "tests.train.factories:tiny",
            "--steps",
            "6",
            "--warmup",
            "1",
            "--no-ceiling",
            "--no-store",
            "--trace",
            str(trace),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "forward" in result.output and "samples/s" in result.output
    events = json.loads(trace.read_text())["traceEvents"]
    assert {"hwfit.forward", "hwfit.backward", "hwfit.optimizer"} <= {event.get("name") for event in events}


def test_a_bad_factory_is_one_error():
    result = runner.invoke(app, ["train", "profile", "tests.train.factories:not_a_dict", "--no-store"])
    assert result.exit_code != 0
    assert "expected a dict with model, optimizer, loss_fn and data" in str(result.exception)
