"""The waterfall's arithmetic: steps add up to the purchased total, shares are attributed in order and
capped by what is left, and every step says how it was obtained."""

import pytest

from hwfit.audit import AuditError, Factor, Share, WaterfallInputs, build_waterfall
from hwfit.core import Figure

PEAK = Figure(100e9, "FLOP/s", "computed", "2 cores x 50 GFLOP/s")


def inputs(**changes) -> WaterfallInputs:
    base = dict(
        device="cpu",
        precision="fp32",
        window_s=10.0,
        peak=PEAK,
        busy=Share(0.6, "measured", "/proc/stat"),
        audited=Share(0.5, "measured", "psutil"),
        computing=Share(0.3, "estimated", "batches x p50"),
        useful_flops=Figure(50e9, "FLOP", "computed", "samples x FLOPs/sample"),  # 5% of 1 TFLOP purchased
        batch=Factor(2.0, "batch 8", "run 1"),
        precision_gain=Factor(1.5, "int8-dynamic", "run 1"),
        usd_per_s=Figure(0.001, "USD/s", "estimated", "catalog"),
    )
    base.update(changes)
    return WaterfallInputs(**base)


def shares(waterfall) -> dict[str, float]:
    return {step.name: round(step.share, 6) for step in waterfall.steps}


def test_the_steps_add_up_to_the_purchased_total_in_order():
    waterfall = build_waterfall(inputs())
    assert waterfall.purchased.flops == pytest.approx(1e12)
    assert shares(waterfall) == {
        "purchased": 1.0,
        "idle": 0.4,
        "other processes": 0.1,
        "busy but not computing": 0.2,
        # useful 5%: a 2x batch would have given 5% more, then 1.5x precision on 10% another 5%
        "batch below the sweet spot": 0.05,
        "precision left on the table": 0.05,
        "computing below peak": 0.15,
        "useful": 0.05,
    }
    assert sum(step.flops for step in waterfall.losses) + waterfall.useful.flops == pytest.approx(1e12)
    assert waterfall.purchased.usd == pytest.approx(0.01) and waterfall.step("idle").usd == pytest.approx(0.004)
    assert {step.name: step.how for step in waterfall.steps}["busy but not computing"] == "estimated"
    assert all(step.source for step in waterfall.steps)


def test_measured_factors_are_capped_by_what_is_left_of_the_compute_time():
    waterfall = build_waterfall(
        inputs(batch=Factor(10.0, "batch 64", "run 2"), precision_gain=Factor(4.0, "int8", "r"))
    )
    # compute 30%, useful 5%: the batch may claim 45% but only 25% is left; nothing for precision
    assert shares(waterfall)["batch below the sweet spot"] == 0.25
    assert shares(waterfall)["precision left on the table"] == 0.0
    assert shares(waterfall)["computing below peak"] == 0.0


def test_without_a_work_count_the_busy_time_is_one_step_that_says_why():
    waterfall = build_waterfall(inputs(useful_flops=None, useful_missing="no FLOP count", computing=None))
    assert waterfall.useful is None and waterfall.useful_share is None
    last = waterfall.losses[-1]
    assert last.name == "busy, useful work not measured" and last.source == "no FLOP count"
    assert last.share == pytest.approx(0.5)
    assert sum(step.flops for step in waterfall.losses) == pytest.approx(waterfall.purchased.flops)


def test_inconsistent_shares_are_capped_and_noted_never_negative():
    waterfall = build_waterfall(
        inputs(audited=Share(0.9, "measured", "psutil"), computing=Share(0.95, "estimated", "x"))
    )
    assert shares(waterfall)["other processes"] == 0.0 and shares(waterfall)["busy but not computing"] == 0.0
    assert any("exceeds the device's busy" in note for note in waterfall.notes)
    assert all(step.flops >= 0 for step in waterfall.steps)
    too_much = build_waterfall(inputs(useful_flops=Figure(9e11, "FLOP", "computed", "x")))
    assert too_much.useful_share == pytest.approx(0.3)
    assert any("peak or the FLOP count is off" in note for note in too_much.notes)


def test_no_counters_the_not_computing_step_is_left_out_and_the_remainder_says_so():
    waterfall = build_waterfall(inputs(computing=None, not_computing_missing="no counters"))
    names = [step.name for step in waterfall.steps]
    assert "busy but not computing" not in names and "busy, not useful" in names
    assert any("not measured on this device (no counters)" in note for note in waterfall.notes)


@pytest.mark.parametrize(
    "change, message",
    [({"window_s": 0.0}, "window must last > 0 s"), ({"peak": Figure(0.0, "FLOP/s", "spec", "x")}, "peak must be > 0")],
)
def test_an_impossible_window_or_peak_is_refused_with_what_was_expected(change, message):
    with pytest.raises(AuditError, match=message):
        build_waterfall(inputs(**change))
