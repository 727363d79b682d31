"""`advise` end to end on a real starved loader (each experiment in its own process), and its
results in the store."""

import pytest

from hwfit.report import build_report
from hwfit.store import open_store
from hwfit.train import advise, save_advice

F = "tests.train.factories"


@pytest.fixture(scope="module")
def starved_advice():
    # Only the loader change: 4 processes (traits, baseline, loader, baseline again).
    return advise(f"{F}:starved", steps=6, warmup=2, only=["loader"], timeout_s=180)


def test_the_starved_loader_is_diagnosed_and_the_loader_change_is_measured(starved_advice):
    assert starved_advice.baseline["breakdown"]["data_bound"]
    (loader,) = [r for r in starved_advice.results if r.name == "data loader workers"]
    assert loader.status in ("kept", "rejected"), loader.reason
    assert loader.speedup is not None and loader.step_ms > 0
    assert loader.loss_check["ok"], loader.reason  # same seeds and data order: the same losses
    assert loader.changes["num_workers"] >= 1
    assert "num_workers=" in loader.code
    assert "same 6 steps" in starved_advice.rule


def test_advice_round_trips_through_the_store(starved_advice, tmp_path):
    with open_store(tmp_path / "results.db") as store:
        run_id = save_advice(store, f"{F}:starved", starved_advice, {"steps": 6})
        rows = store.train_experiments(run_id)
        run = store.get_run(run_id)
    assert run.sweep_key == "train-advise" and run.status == "complete"
    assert [row["name"] for row in rows][:2] == ["baseline", "data loader workers"]
    assert rows[0]["status"] == "baseline" and rows[0]["speedup"] == 1.0
    assert rows[1]["loss_ok"] is True
    assert rows[1]["details"]["losses"] == starved_advice.baseline["losses"]
    with open_store(tmp_path / "results.db") as store:
        page = build_report(store, [run_id], None, None)
    assert '<section id="training"><h2>Training experiments (hwfit train)</h2>' in page
    assert "data loader workers" in page and "data-bound" in page


def test_a_failing_baseline_says_why(tmp_path):
    from hwfit.train import TrainError

    with pytest.raises(TrainError, match=r"LoaderError.*cannot decode item"):
        advise(f"{F}:broken_loader", steps=3, warmup=1, only=["bf16"], timeout_s=120)


def test_the_advice_table_names_each_change_and_the_rule(starved_advice):
    from rich.console import Console

    from hwfit.cli.train import _print_advice

    console = Console(record=True, width=200)
    _print_advice(console, {**starved_advice.to_dict(), "run_id": 7})
    text = console.export_text()
    assert "data loader workers" in text and "rule: speed from each run's median warm step" in text
    assert "hwfit results 7" in text


def test_ddp_ranks_train_together_over_gloo():
    from hwfit.train.advise import ddp_job

    result = ddp_job(f"{F}:tiny", 4, 1, "cpu", 2)
    assert len(result["losses"]) == 4
    assert result["breakdown"]["median_step_ms"] > 0
