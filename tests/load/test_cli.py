"""`hwfit load` through the real Typer app (and once as its own process, as users run it)."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

import hwfit.cli.load  # noqa: F401 - registers the command on the app the test invokes
from hwfit.cli._app import app
from hwfit.core import parse_traffic

runner = CliRunner()


def test_help_has_examples():
    result = runner.invoke(app, ["load", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "hwfit load http://127.0.0.1:8000 --traffic poisson:50 --duration 20" in result.output
    for flag in ("--traffic", "--concurrency", "--binary", "--records", "--report", "--allow-remote", "--json"):
        assert flag in result.output


def test_json_records_and_report(tiny_server, tmp_path):
    args = ["load", tiny_server.http_url, "--traffic", "poisson:50", "--duration", "1.5", "--warmup", "0.3"]
    args += ["--records", str(tmp_path / "run.csv"), "--report", str(tmp_path / "run.html"), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # the whole stdout is JSON
    summary = data["summary"]
    assert data["model"] == "tiny" and data["traffic"] == "poisson:50"
    for key in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "answered_rps", "offered_rps", "rejected"):
        assert key in summary
    assert summary["ok"] > 0 and summary["errors"] == 0
    rows = (tmp_path / "run.csv").read_text().splitlines()
    assert len(rows) == 1 + data["planned_requests"]
    assert len(parse_traffic(f"trace:{tmp_path / 'run.csv'}").times_s) == data["planned_requests"]
    page = (tmp_path / "run.html").read_text()
    assert page.count("<svg") == 2 and "<script" not in page  # self-contained: nothing to fetch
    assert "src=" not in page and "<link" not in page
    assert page.count("<circle") == data["planned_requests"]  # one point per request


def test_table_for_people(tiny_server):
    result = runner.invoke(
        app, ["load", tiny_server.http_url, "-c", "2", "--duration", "0.6", "--warmup", "0.1"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    for text in (
        "closed loop, 2 client(s)",
        "answered / offered",
        "p50 / p90 / p99 / p99.9 / max",
        "rejected (429/503)",
    ):
        assert text in result.output
    assert "the only model listed by POST /v2/repository/index" in result.output


def test_a_remote_host_is_one_error_line_and_exit_2():
    command = [sys.executable, "-c", "from hwfit.cli import main; main()", "load", "http://10.9.8.7:8000"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--allow-remote" in done.stderr and "Traceback" not in done.stderr
