"""`hwfit check` end to end on a tiny ONNX model: record a baseline, catch a slower candidate
interleaved, pass the same model against its stored rounds, and exit 2 — naming what to fix —
whenever the two sides cannot be compared."""

import json
import xml.etree.ElementTree as ElementTree

import pytest
from typer.testing import CliRunner

from hwfit.cli import app
from hwfit.store import open_store
from tests.check.models import write_matmul_chain

# 7 rounds: the fewest whose paired test can reach p < 0.01 (1/2^7)
FAST = ["--rounds", "7", "--round-s", "0.1", "--warmup-s", "0.05"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("check")
    model = write_matmul_chain(folder / "model.onnx", layers=8)
    db, baseline = folder / "results.db", folder / "baseline.json"
    args = ["check", str(model), "--baseline", str(baseline), "--update-baseline", "--db", str(db), *FAST, "--json"]
    result = CliRunner().invoke(app, args)
    return folder, model, db, baseline, result


def _check(*args):
    result = CliRunner().invoke(app, ["check", *map(str, args)])
    return result, (json.loads(result.stdout) if result.stdout.strip().startswith("{") else None)


def test_update_baseline_writes_a_results_export_with_every_round(recorded):
    folder, model, db, baseline, result = recorded
    assert result.exit_code == 0, result.output
    document = json.loads(baseline.read_text())
    assert document["schema"] == "hwfit.results/1" and document["run"]["model_source"] == str(model)
    (point,) = document["measurements"]
    assert point["variant_key"].startswith("ort/cpu/fp32/b1")
    assert len(point["rounds"]) == 7
    assert all({"p50_ms", "samples_per_s", "accuracy_loss"} <= set(sample) for sample in point["rounds"])
    assert document["run"]["environment"]["extra"]["cpu_count"] >= 1
    with open_store(db) as store:  # the store keeps the same rounds
        assert store.measurements(document["run"]["id"])[0].rounds == point["rounds"]


def test_a_slower_candidate_fails_measured_interleaved_with_the_baseline_model(recorded):
    folder, _, db, baseline, _ = recorded
    slow = write_matmul_chain(folder / "slow.onnx", layers=8, extra_fraction=3.0)  # 4x the work
    markdown, junit = folder / "summary.md", folder / "check.xml"
    result, report = _check(
        slow, "--baseline", baseline, "--db", db, *FAST, "--json", "--markdown", markdown, "--junit", junit
    )
    assert result.exit_code == 1, result.output
    assert report["mode"] == "interleaved" and report["verdict"] == "fail"  # found the baseline's own model file
    p50 = next(m for m in report["variants"][0]["metrics"] if m["metric"] == "p50_ms")
    assert p50["verdict"] == "fail" and p50["change"] > 0.3 and p50["p_worse"] < 0.01
    assert len(p50["baseline_rounds"]) == len(p50["candidate_rounds"]) == 7
    assert "Wilcoxon signed-rank" in report["test"]
    assert report["environment_changes"][0]["field"] == "model"
    assert markdown.read_text().startswith("## hwfit check: ❌ regression")
    cases = ElementTree.parse(junit).getroot().findall("./testsuite/testcase")
    assert any(case.get("name") == "p50_ms" and case.find("failure") is not None for case in cases)


def test_the_same_model_passes_against_its_stored_rounds(recorded, tmp_path):
    folder, model, db, baseline, _ = recorded
    # a shared CI machine moves timings between two sets of processes: judge them loosely here,
    # the statistics have their own tests and bench/check_power.py measures the real false-alarm rate
    loose = tmp_path / "loose.yaml"
    loose.write_text("metrics:\n  p50_ms: {fail: 0.5}\n  samples_per_s: {fail: 0.5}\n  p99_ms: {fail: 5}\n")
    result, report = _check(model, "--baseline", baseline, "--db", db, *FAST, "--thresholds", loose, "--json")
    assert result.exit_code == 0, result.output
    assert report["mode"] == "stored" and report["verdict"] in ("pass", "warn", "improved")
    assert not any(change["field"] == "model" for change in report["environment_changes"])
    people = CliRunner().invoke(app, ["check", str(model), "--baseline", str(baseline), "--db", str(db), *FAST])
    assert people.exit_code == 0 and "p50 latency" in people.stdout and "hwfit check" in people.stdout


def test_a_baseline_of_one_round_cannot_judge_and_says_so(recorded, tmp_path):
    folder, model, db, baseline, _ = recorded
    document = json.loads(baseline.read_text())
    document["measurements"][0]["rounds"] = document["measurements"][0]["rounds"][:1]
    thin = tmp_path / "thin.json"
    thin.write_text(json.dumps(document))
    result, report = _check(model, "--baseline", thin, "--db", db, *FAST, "--json")
    assert result.exit_code == 2
    p50 = next(m for m in report["variants"][0]["metrics"] if m["metric"] == "p50_ms")
    assert p50["verdict"] == "incomparable" and "record the baseline with more rounds" in p50["reason"]


def _runs_listing(folder, db):
    with open_store(db) as store:
        from hwfit.store import runs_to_json

        path = folder / "listing.json"
        path.write_text(runs_to_json(store.list_runs()))
    return path


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing baseline", "not found; record one with `hwfit check MODEL --baseline"),
        ("bad thresholds", "field 'metrics.p50_ms.fail'"),
        ("model fails to load", "broken.onnx"),
        ("a listing, not a run", "a listing of runs"),
        ("update into a run id", "--update-baseline writes a baseline file"),
        ("unknown run", "no run 999"),
    ],
)
def test_what_cannot_be_compared_exits_2_naming_what_to_fix(recorded, tmp_path, case, expected):
    folder, model, db, baseline, _ = recorded
    args = [model, "--baseline", baseline, "--db", db, *FAST]
    if case == "missing baseline":
        args[2] = tmp_path / "nothing.json"
    elif case == "bad thresholds":
        bad = tmp_path / "t.yaml"
        bad.write_text("metrics:\n  p50_ms: {fail: lots}\n")
        args += ["--thresholds", bad]
    elif case == "model fails to load":
        broken = tmp_path / "broken.onnx"
        broken.write_bytes(b"not an onnx model")
        args[0] = broken
    elif case == "a listing, not a run":
        args[2] = _runs_listing(tmp_path, db)
    elif case == "update into a run id":
        args[2] = "1"
        args.append("--update-baseline")
    elif case == "unknown run":
        args[2] = "999"
    result, report = _check(*args, "--json")
    assert result.exit_code == 2, result.output
    assert report["verdict"] == "incomparable" and report["exit_code"] == 2
    assert expected in report["error"]
