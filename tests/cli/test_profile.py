import json

from typer.testing import CliRunner


def test_profile_json_then_same_command_reuses_the_run(tmp_path):
    from hwfit.cli import app

    db = str(tmp_path / "results.db")
    args = ["profile", "cnn", "-b", "ort", "-p", "fp32", "--batch", "2", "--budget", "0.5", "--db", db, "--json"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["schema"] == "hwfit.results/1"
    (point,) = report["measurements"]
    assert point["variant_key"] == "ort/cpu/fp32/b2" and point["status"] in ("ok", "unstable")

    again = CliRunner().invoke(app, args)
    assert json.loads(again.stdout)["measurements"][0]["started_at"] == point["started_at"]
    fresh = CliRunner().invoke(app, args + ["--fresh"])
    assert json.loads(fresh.stdout)["run"]["id"] != report["run"]["id"]


def test_profile_rejects_bad_flags_with_the_field(tmp_path):
    from hwfit.cli import app

    result = CliRunner().invoke(app, ["profile", "cnn", "-p", "int4", "--db", str(tmp_path / "r.db")])
    assert result.exit_code != 0
    assert "precisions" in str(result.exception) and "int4" in str(result.exception)
