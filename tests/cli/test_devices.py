"""`hwfit devices` through the real Typer app: JSON on stdout only, tables for people, bench on request."""

import json

from typer.testing import CliRunner

import hwfit.cli.devices  # noqa: F401 - registers the command on the app the test invokes

# hwfit.cli imports every command module; import only ours so this test does not depend on others.
from hwfit.cli._app import app

runner = CliRunner()


def test_json_is_the_whole_stdout():
    result = runner.invoke(app, ["devices", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["schema"] == "hwfit.devices/1"
    assert data["cpu"]["physical_cores"] >= 1
    assert "avx2" in data["cpu"]["isa"]
    assert "ceilings" not in data
    cpu_sources = [s for s in data["power_sources"] if s["device"] == "cpu"]
    assert cpu_sources and all(s["usable"] or s["reason"] for s in cpu_sources)  # unusable ones say why


def test_bench_quick_json_adds_measured_ceilings():
    result = runner.invoke(app, ["devices", "--bench", "--quick", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    cpu_ceilings = [c for c in data["ceilings"] if c["device"] == "cpu"]
    metrics = {(c["metric"], c["dtype"]) for c in cpu_ceilings}
    assert ("matmul_flops", "fp32") in metrics and ("mem_bandwidth", None) in metrics
    for ceiling in cpu_ceilings:
        assert ceiling["how"] == "measured" and ceiling["value"] > 0 and ceiling["method"]


def test_tables_for_people():
    result = runner.invoke(app, ["devices"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for title in ("CPU", "Runtimes", "Peak rates"):
        assert title in result.stdout
    assert "CPUExecutionProvider" in result.stdout
    assert "NVIDIA" in result.stdout  # either the GPU table or "no NVIDIA GPU: <reason>"


def test_quick_without_bench_is_refused():
    result = runner.invoke(app, ["devices", "--quick"])
    assert result.exit_code != 0
    assert "--bench" in result.output


def test_help_has_an_example():
    result = runner.invoke(app, ["devices", "--help"])
    assert result.exit_code == 0
    assert "hwfit devices --bench" in result.stdout
