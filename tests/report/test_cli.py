"""`hwfit report` through the real Typer app on a real database: which runs it reports, where it
writes, and the errors a user can act on."""

import yaml
from typer.testing import CliRunner

import hwfit.cli.report  # noqa: F401 - registers the command on the app the test invokes

# Import only our command module so this test does not depend on other commands mid-edit.
from hwfit.cli._app import app
from hwfit.store import open_store

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["report", *args], env={"HWFIT_DB": ""})


def test_latest_run_by_default(tmp_path, db_path, samples):
    with open_store(db_path) as store:
        newer = store.start_run("cnn", "builtin:cnn", "ffff0000", "s", {}, samples.environment())
        store.record(newer.id, samples.timed("torch/cpu/fp32/b1/t1", "fp32", 1, 0.5))
    out = tmp_path / "latest.html"
    result = invoke("--db", str(db_path), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert f"report written to {out.resolve()}" in result.output
    page = out.read_text()
    assert "hwfit report — cnn" in page and "torch/cpu/fp32/b1/t1" in page and "ort/cpu/fp32/b8/t2" not in page


def test_run_id_and_plan(tmp_path, db_path, samples):
    out = tmp_path / "sub" / "r.html"
    result = invoke("1", "--plan", str(samples.EXAMPLE_PLAN), "--db", str(db_path), "--output", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "Hand-written example plan for tests" in page and "ort/cpu/fp32/b8/t2" in page
    assert 'data-chart="pareto"' in page


def test_plan_alone_reports_the_runs_it_names(tmp_path, db_path, samples):
    out = tmp_path / "plan.html"
    result = invoke("--plan", str(samples.EXAMPLE_PLAN), "--db", str(db_path), "-o", str(out))
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "ort/cpu/int8-dynamic/b1/t2" in page and "<td>1</td><td>minilm</td>" in page


def test_plan_naming_no_runs_needs_no_database(tmp_path, samples):
    plan = yaml.safe_load(samples.EXAMPLE_PLAN.read_text())
    plan["search"]["run_ids"] = []
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(yaml.safe_dump(plan))
    out = tmp_path / "p.html"
    result = invoke("--plan", str(plan_file), "--db", str(tmp_path / "absent.db"), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "no profile runs in this report" in out.read_text()


def test_no_database_or_no_runs(tmp_path):
    result = invoke("--db", str(tmp_path / "absent.db"), "-o", str(tmp_path / "r.html"))
    assert result.exit_code == 2
    assert "no runs in the store" in result.output and "hwfit profile MODEL" in result.output
    with open_store(tmp_path / "empty.db"):
        pass
    result = invoke("--db", str(tmp_path / "empty.db"), "-o", str(tmp_path / "r.html"))
    assert result.exit_code == 2 and "run `hwfit profile MODEL` first" in result.output
    assert not (tmp_path / "r.html").exists()


def test_unknown_run_and_bad_plan(tmp_path, db_path):
    result = invoke("9", "--db", str(db_path), "-o", str(tmp_path / "r.html"))
    assert result.exit_code == 2 and "unknown run id 9" in result.output
    bad = tmp_path / "plan.yaml"
    bad.write_text("pools: [\n")
    result = invoke("--plan", str(bad), "--db", str(db_path), "-o", str(tmp_path / "r.html"))
    assert result.exit_code == 2 and "bad plan file" in result.output and "not valid YAML" in result.output


def test_help_has_an_example():
    result = runner.invoke(app, ["report", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0 and "hwfit report --plan plan.yaml" in result.output
