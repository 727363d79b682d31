"""`hwfit simulate` and `hwfit forecast` through the real Typer app: tables, --json, the page, errors."""

import json
import subprocess
import sys

from typer.testing import CliRunner

import hwfit.cli.forecast  # noqa: F401 - registers the command on the app the test invokes
import hwfit.cli.simulate  # noqa: F401 - registers the command on the app the test invokes
from hwfit.cli._app import app
from tests.forecast._plans import plan, store_with_points

runner = CliRunner()
WIDE = {"COLUMNS": "200"}
MAIN = "from hwfit.cli import main; main()"  # the console script, as a user runs it


def _files(tmp_path):
    path = tmp_path / "plan.yaml"
    plan().save(path)
    store_with_points(tmp_path / "r.db").close()
    return path, tmp_path / "r.db"


def test_simulate_prints_the_server_pools_and_timeline_and_writes_a_page(tmp_path):
    plan_path, db = _files(tmp_path)
    page = tmp_path / "sim.html"
    result = runner.invoke(
        app,
        ["simulate", str(plan_path), "--traffic", "burst:20,400,20,5", "--db", str(db), "--report", str(page)],
        env=WIDE,
    )
    assert result.exit_code == 0, result.output
    for text in ("The server", "Pools", "Over time", "simulated", "deadline", "lognormal sigma 0.078"):
        assert text in result.output
    html = page.read_text()
    assert "<svg" in html and "burst:20,400,20,5" in html


def test_simulate_json_and_the_default_traffic(tmp_path):
    plan_path, db = _files(tmp_path)
    result = runner.invoke(app, ["simulate", str(plan_path), "--db", str(db), "--json", "--duration", "30s"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["traffic"] == "poisson:50"  # the plan's SLO throughput
    assert data["result"]["answered"] > 1000 and data["result"]["pools"][0]["name"] == "cpu-ort-fp32"


def test_simulate_errors_name_the_input(tmp_path):
    plan_path, db = _files(tmp_path)
    bad = runner.invoke(app, ["simulate", str(plan_path), "--traffic", "poisson:fast", "--db", str(db)])
    assert bad.exit_code != 0 and "RATE" in str(bad.exception or bad.output)
    outage = runner.invoke(app, ["simulate", str(plan_path), "--outage", "cpu-ort-fp32@soon", "--db", str(db)])
    assert outage.exit_code == 2 and "POOL@START+LENGTH" in outage.output


def test_forecast_tables_and_json(tmp_path):
    plan_path, db = _files(tmp_path)
    args = ["forecast", str(plan_path), "--traffic", "diurnal:300,30,1h", "--what-if", "h100-sxm", "--db", str(db)]
    result = runner.invoke(app, [*args, "--growth", "1,2", "--monthly-growth", "10%"], env=WIDE)
    assert result.exit_code == 0, result.output
    for text in ("Devices to hold the SLO at the peak", "Cost over 3 years", "As traffic grows", "estimated", "month"):
        assert text in result.output
    data = json.loads(runner.invoke(app, [*args, "--json"]).output)
    assert [d["label"] for d in data["devices"]] == ["cpu", "h100-sxm"]
    assert data["devices"][0]["devices_needed"] == 3  # 300 req/s over 140 per device


def test_forecast_bad_prices_exit_2_naming_the_field(tmp_path):
    plan_path, db = _files(tmp_path)
    prices = tmp_path / "prices.yaml"
    prices.write_text("devices:\n  l4:\n    buy: {dollars: 3}\n")
    done = subprocess.run(
        [sys.executable, "-c", MAIN, "forecast", str(plan_path), "--prices", str(prices), "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "devices.l4.buy" in done.stderr


def test_help_has_examples():
    for command in ("simulate", "forecast"):
        result = runner.invoke(app, [command, "--help"], env=WIDE)
        assert result.exit_code == 0 and "Examples" in result.output and "--traffic" in result.output
