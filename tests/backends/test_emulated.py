import time

import pytest

from hwfit.core import Variant

from hwfit.backends import load_variant
from hwfit.backends.emulated import service_time_s


def test_curve_interpolates_and_extrapolates():
    curve = [(1, 2.0), (8, 9.0), (32, 21.0)]
    assert service_time_s(curve, 1) == pytest.approx(0.002)
    assert service_time_s(curve, 4) == pytest.approx(0.005)
    assert service_time_s(curve, 64) == pytest.approx(0.037)


def test_emulated_runner_follows_its_curve_and_is_labelled(cnn):
    variant = Variant("emulated", "emulated", "fp32", 8, knobs=(("curve", "1:2,8:12"),))
    runner = load_variant(cnn, variant)
    assert any("EMULATED" in note for note in runner.stats.notes)
    inputs = cnn.synthetic_inputs(8)
    started = time.perf_counter()
    for _ in range(10):
        outputs = runner.run(inputs)
    elapsed = (time.perf_counter() - started) / 10
    assert 0.012 <= elapsed < 0.020  # never faster than the curve; scheduling may add a little
    assert outputs["logits"].shape == (8, 10)


def test_emulated_backend_refuses_a_real_device(cnn):
    from hwfit.backends import get_backend

    reason = get_backend("emulated").unavailable_reason(cnn, Variant("emulated", "cpu"))
    assert "emulated" in reason
