"""The loss-parity rule: same steps, means within rtol x |baseline| + atol, over all steps and the last quarter."""

import math

from hwfit.train import loss_parity

BASE = [2.3, 2.2, 2.0, 1.9, 1.7, 1.6, 1.5, 1.4]


def test_identical_and_slightly_different_losses_pass():
    assert loss_parity(BASE, list(BASE)).ok
    nudged = [x * 1.01 for x in BASE]
    check = loss_parity(BASE, nudged, rtol=0.03, atol=0.0)
    assert check.ok and "within" in check.reason


def test_a_shift_beyond_the_tolerance_fails_and_says_by_how_much():
    shifted = [x + 0.2 for x in BASE]
    check = loss_parity(BASE, shifted, rtol=0.03, atol=0.01)
    assert not check.ok
    assert check.difference > check.tolerance
    assert "outside" in check.reason


def test_divergence_at_the_end_is_caught_even_when_the_overall_mean_agrees():
    # Learns faster at first, then stalls: the mean over all steps is within 0.04 of the baseline's
    # (tolerance 0.065), the last quarter is 0.45 off.
    late = [2.1, 2.0, 1.8, 1.7, 1.5, 1.4, 1.9, 1.9]
    assert abs(sum(late) / 8 - sum(BASE) / 8) < 0.03 * sum(BASE) / 8 + 0.01
    check = loss_parity(BASE, late, rtol=0.03, atol=0.01)
    assert not check.ok and "last quarter" in check.reason


def test_nan_and_other_steps_fail():
    assert not loss_parity(BASE, BASE[:-1] + [math.nan]).ok
    assert "NaN" in loss_parity(BASE, BASE[:-1] + [math.inf]).reason
    assert "same steps" in loss_parity(BASE, BASE[:4]).reason
