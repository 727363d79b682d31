"""One point measured in this process: the measured runner's peak-memory count starts afresh."""

from hwfit.backends.emulated import EmulatedRunner
from hwfit.core import Variant
from hwfit.profile.point import PointPlan, measure_point
from hwfit.profile.stats import StopRule, WarmupRule


def test_peak_memory_is_reset_for_the_measured_runner(cnn, monkeypatch):
    """The accuracy runner runs first in the same process; a framework that keeps one peak count per
    process (torch.cuda) would report its peak as the measured runner's unless the count is reset."""
    events: list[tuple[str, int]] = []
    run = EmulatedRunner.run_unchecked
    monkeypatch.setattr(EmulatedRunner, "reset_device_memory_peak", lambda self: events.append(("reset", id(self))))
    monkeypatch.setattr(
        EmulatedRunner, "run_unchecked", lambda self, inputs: events.append(("run", id(self))) or run(self, inputs)
    )
    variant = Variant("emulated", "emulated", "fp32", 2, knobs=(("base_ms", "0.2"), ("per_sample_ms", "0.1")))
    inputs, _ = cnn.sample_inputs(4, seed=1)
    plan = PointPlan(
        "cnn",
        cnn.inputs,
        variant,
        stop=StopRule(min_runs=5, min_seconds=0.05, budget_s=0.5),
        warmup=WarmupRule(budget_s=0.05),
        reference={"logits": run(EmulatedRunner(cnn, variant, {"logits": (10,)}), inputs)["logits"]},
        reference_inputs=inputs,
    )
    measurement = measure_point(plan)
    assert measurement.status in ("ok", "unstable")
    runners = list(dict.fromkeys(runner for _, runner in events))
    assert len(runners) == 2, events  # the accuracy runner, then the measured one
    accuracy, measured = runners
    measured_events = [kind for kind, runner in events if runner == measured]
    assert measured_events[0] == "reset" and measured_events.count("reset") == 1
    assert measured_events[1:] and set(measured_events[1:]) == {"run"}
