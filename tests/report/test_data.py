"""Shaping the report's data: which runs, families and curves, sweet spots, roofs, candidates."""

import pytest

from hwfit.plan import parse_plan
from hwfit.report import ReportError, choose_run_ids, load_report_data, read_plan
from hwfit.report import data as shaped
from hwfit.store import open_store


def test_latest_run_is_the_default(tmp_path, samples):
    path = samples.make_store(tmp_path / "r.db")
    with open_store(path) as store:
        second = store.start_run("cnn", "builtin:cnn", "ffff", "s", {}, samples.environment())
        assert choose_run_ids(store, None, None) == [second.id]
        assert choose_run_ids(store, 1, None) == [1]


def test_plan_names_its_runs(store, example_plan):
    assert choose_run_ids(store, None, example_plan) == [1]


def test_unknown_and_missing_runs_are_clear_errors(tmp_path, store, example_plan):
    with pytest.raises(ReportError, match="unknown run id 9.*newest are 1"):
        choose_run_ids(store, 9, None)
    data = example_plan.to_dict()
    data["search"]["run_ids"] = [1, 42]
    with pytest.raises(ReportError, match="unknown run id 42 \\(named by the plan's search.run_ids\\)"):
        choose_run_ids(store, None, parse_plan(data))
    with (
        open_store(tmp_path / "empty.db") as empty,
        pytest.raises(ReportError, match="no runs in .*hwfit profile MODEL"),
    ):
        choose_run_ids(empty, None, None)


def test_bad_plan_file_is_a_report_error(tmp_path):
    bad = tmp_path / "plan.yaml"
    bad.write_text("schema: hwfit.plan/1\nfeasible: maybe\n")
    with pytest.raises(ReportError, match="bad plan file: .*plan.yaml"):
        read_plan(bad)
    with pytest.raises(ReportError, match="cannot read"):
        read_plan(tmp_path / "absent.yaml")


def test_family_drops_only_the_batch_part(samples):
    point = samples.timed("ort/cpu/fp32/b8/t2/b8x=1", "fp32", 8, 1.0)
    assert shaped.family_of(point) == "ort/cpu/fp32/t2/b8x=1"


def test_curves_take_ok_and_unstable_points_in_batch_order(store):
    data = load_report_data(store, [1])
    curves = {c.family: c for c in shaped.family_curves(data)}
    assert set(curves) == {"ort/cpu/fp32/t2", "ort/cpu/int8-dynamic/t2"}  # failed and skipped left out
    assert [p.batch for p in curves["ort/cpu/fp32/t2"].points] == [1, 2, 4, 8]
    int8 = curves["ort/cpu/int8-dynamic/t2"].points
    assert [(p.batch, p.status) for p in int8] == [(1, "ok"), (2, "unstable")]
    assert int8[0].samples_per_s == pytest.approx(800.0) and int8[0].p99_ms == pytest.approx(1.875)


def test_sweet_spots_recorded_then_derived_for_unrecorded_families(tmp_path, samples):
    path = samples.make_store(tmp_path / "r.db", extra=False)
    with open_store(path) as store:
        data = load_report_data(store, [1])
    spots = {s.family: s for s in shaped.sweet_spots(data, shaped.family_curves(data))}
    assert (spots["ort/cpu/int8-dynamic/t2"].batch, spots["ort/cpu/int8-dynamic/t2"].how) == (2, "derived")
    fp32 = spots["ort/cpu/fp32/t2"]
    assert fp32.batch == 4  # 4 / 6.5 ms ties 8 / 13 ms: the smaller batch wins
    assert "recorded no sweet spot" in fp32.stop_reason


def test_recorded_sweet_spots_come_from_the_sweep(store):
    data = load_report_data(store, [1])
    spots = {s.family: s for s in shaped.sweet_spots(data, shaped.family_curves(data))}
    assert set(spots) == {"ort/cpu/fp32/t2", "ort/cpu/int8-dynamic/t2", "openvino/cpu/bf16/t2"}
    assert (spots["ort/cpu/fp32/t2"].batch, spots["ort/cpu/fp32/t2"].how) == (4, "measured")
    assert spots["openvino/cpu/bf16/t2"].batch is None


def test_roofs_and_ceiling_errors(store):
    data = load_report_data(store, [1])
    rows = {row.device: row for row in shaped.ceiling_rows(data)}
    assert rows["cuda:0"].error == "no NVIDIA driver" and rows["cpu"].bandwidth_bytes_per_s == 4.2e10
    roofs = {roof.dtype: roof for roof in shaped.roofs(data)}
    assert set(roofs) == {"fp32", "bf16"}
    assert roofs["fp32"].ridge == pytest.approx(2.0e11 / 4.2e10)
    assert len(shaped.roofline_points(data)) == 6  # every ok or unstable point


def test_accuracy_loss_prefers_top1_then_cosine(samples):
    point = samples.timed("k/b1", "fp32", 1, 1.0)
    point.cosine_mean, point.top1_agreement = 0.99, 0.95
    assert shaped.accuracy_loss(point) == pytest.approx(0.05)
    point.top1_agreement = None
    assert shaped.accuracy_loss(point) == pytest.approx(0.01)
    point.cosine_mean = None
    assert shaped.accuracy_loss(point) is None


def test_pareto_view_uses_the_objective_when_two_candidates_have_it(example_plan):
    view = shaped.pareto_view(example_plan)  # only one candidate has a cost: capacity instead
    assert view.y_field == "capacity_rps" and "capacity is shown instead" in view.why
    assert len(view.plotted) == 2 and [c.verdict for c in view.chosen] == ["chosen"]
    data = example_plan.to_dict()
    data["candidates"][1]["cost_per_million"] = 0.9
    data["candidates"].append({**data["candidates"][1], "config": "x", "p99_ms": None})
    view = shaped.pareto_view(parse_plan(data))
    assert view.y_field == "cost_per_million" and [c.config for c in view.unplotted] == ["x"]
    assert [c.config for c in view.front] == ["ort/cpu/int8-dynamic/t1 x2"]


def test_plan_for_another_model_is_flagged(tmp_path, samples, example_plan):
    path = samples.make_store(tmp_path / "r.db", model_hash="feedbeef")
    with open_store(path) as store:
        data = load_report_data(store, [1], example_plan)
    (warning,) = shaped.plan_mismatches(data)
    assert "run 1 profiled minilm (hash feedbeef)" in warning


def test_energy_cost_per_million():
    assert shaped.energy_cost_per_million(3.6, 0.15) == pytest.approx(0.15)  # 3.6 MJ = 1 kWh
