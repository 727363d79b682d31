"""The step profiler: phases and the rest add up to the step, warm steps only, off costs nothing."""

import contextlib
import time

import pytest

from hwfit.train import PHASES, StepProfiler, StepTiming, TrainError, summarize


def test_phases_and_rest_add_up_to_each_step_and_to_the_mean():
    profiler = StepProfiler("cpu", warmup_steps=1)
    for _ in range(4):
        with profiler.data():
            time.sleep(0.004)
        with profiler.forward():
            time.sleep(0.002)
        time.sleep(0.003)  # outside any phase: the rest
        with profiler.optimizer():
            pass
        profiler.step(samples=8, tokens=80)
    assert len(profiler.timings) == 4
    for timing in profiler.timings:
        assert sum(timing.phases_s.values()) + timing.rest_s == pytest.approx(timing.total_s, abs=1e-12)
        assert timing.phases_s["data"] >= 0.004
        assert timing.rest_s >= 0.003
    breakdown = profiler.breakdown()
    assert breakdown.steps == 3 and breakdown.warmup_steps == 1
    assert sum(breakdown.phases_s.values()) + breakdown.rest_s == pytest.approx(breakdown.step_s, abs=1e-12)
    assert sum(breakdown.share(name) for name in (*PHASES, "rest")) == pytest.approx(1.0)
    assert breakdown.samples_per_s == pytest.approx(8 / breakdown.step_s)
    assert breakdown.tokens_per_s == pytest.approx(80 / breakdown.step_s)


def test_summarize_averages_only_the_warm_steps_with_known_numbers():
    timings = [
        StepTiming(10.0, {"data": 9.0}, samples=4),  # warm-up: left out
        StepTiming(1.0, {"data": 0.5, "forward": 0.25}, samples=4),
        StepTiming(3.0, {"data": 0.5, "forward": 1.75, "backward": 0.5}, samples=4),
    ]
    breakdown = summarize(timings, warmup_steps=1, timer="test")
    assert breakdown.step_s == 2.0
    assert breakdown.phases_s == {"data": 0.5, "copy": 0.0, "forward": 1.0, "backward": 0.25, "optimizer": 0.0}
    assert breakdown.rest_s == pytest.approx(0.25)
    assert breakdown.samples_per_s == 2.0  # 8 samples in 4 s
    assert breakdown.tokens_per_s is None
    assert breakdown.share("data") == 0.25 and breakdown.data_bound  # exactly at the threshold
    assert breakdown.bottleneck == "forward"


def test_no_warm_steps_says_what_to_change():
    with pytest.raises(TrainError, match="run more steps"):
        summarize([StepTiming(1.0, {})], warmup_steps=1, timer="test")


def test_off_profiler_hands_out_one_shared_no_op_and_records_nothing():
    profiler = StepProfiler("cpu", enabled=False)
    phases = {profiler.data(), profiler.copy(), profiler.forward(), profiler.backward(), profiler.optimizer()}
    assert len(phases) == 1 and isinstance(phases.pop(), contextlib.nullcontext)
    with profiler.forward():
        pass
    profiler.step(samples=1)
    assert profiler.timings == []


def test_phases_do_not_nest_and_step_inside_a_phase_is_refused():
    profiler = StepProfiler("cpu")
    with pytest.raises(TrainError, match="do not nest"), profiler.forward(), profiler.backward():
        pass
    profiler = StepProfiler("cpu")
    with pytest.raises(TrainError, match="inside the 'forward' phase"), profiler.forward():
        profiler.step()
    with pytest.raises(TrainError, match="unknown phase"):
        profiler.phase("loss")
