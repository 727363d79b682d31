import time

import pytest

from hwfit.backends import load_variant
from hwfit.backends.emulated import service_time_s
from hwfit.core import Variant


def test_curve_interpolates_and_extrapolates():
    curve = [(1, 2.0), (8, 9.0), (32, 21.0)]
    assert service_time_s(curve, 1) == pytest.approx(0.002)
    assert service_time_s(curve, 4) == pytest.approx(0.005)
    assert service_time_s(curve, 64) == pytest.approx(0.037)


def _timed_runs_s(model, batch: int, curve: str, runs: int = 10):
    runner = load_variant(model, Variant("emulated", "emulated", "fp32", batch, knobs=(("curve", curve),)))
    inputs = model.synthetic_inputs(batch)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        outputs = runner.run(inputs)
        times.append(time.perf_counter() - started)
    return runner, outputs, times


def test_emulated_runner_follows_its_curve_and_is_labelled(cnn):
    runner, outputs, batch8 = _timed_runs_s(cnn, 8, "1:10,8:40")
    _, _, batch1 = _timed_runs_s(cnn, 1, "1:10,8:40")
    assert any("EMULATED" in note for note in runner.stats.notes)
    assert outputs["logits"].shape == (8, 10)
    # never faster than the curve, on any machine
    assert min(batch8) >= 0.040 and min(batch1) >= 0.010
    # and it follows the curve: the fastest runs of each batch differ by the curve's 30 ms (what a
    # slow or busy machine adds to every run is in both and cancels), within a wide margin
    assert 0.024 < min(batch8) - min(batch1) < 0.036


def test_emulated_backend_refuses_a_real_device(cnn):
    from hwfit.backends import get_backend

    reason = get_backend("emulated").unavailable_reason(cnn, Variant("emulated", "cpu"))
    assert "emulated" in reason
