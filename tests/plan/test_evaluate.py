"""The evaluator's reading of a configuration's measured curve."""

import pytest

from hwfit.plan.configs import family_accuracy, group_points
from hwfit.plan.search import measured_config_data
from tests.plan._points import point

OFFERS = {}


def _data(points):
    groups = group_points(points)
    (group,) = groups.values()
    return measured_config_data(group, family_accuracy(groups), groups, OFFERS)


def test_energy_below_the_smallest_measured_batch_follows_the_time_per_sample():
    """A curve measured at batch 16 alone is as long at batch 3 (the curve is flat below its one
    point), so a batch of 3 costs 16/3 of batch 16's J per sample: taking batch 16's J per sample
    as it was made a plan's expected energy 40% below what its pool drew (MiniLM, 0.041 vs 0.066 J)."""
    only_16 = _data([point("torch", "bf16", 16, 50.0, joules=0.04)])
    assert only_16.energy_at(16) == pytest.approx(0.04)
    assert only_16.energy_at(3) == pytest.approx(0.04 * 16 / 3)
    # measured from batch 4 up (4: 20 ms, 8: 30 ms): batch 2 is on the line through them, 15 ms,
    # 7.5 ms a sample against batch 4's 5: 1.5 times the J per sample
    from_4 = _data([point("torch", "bf16", 4, 20.0, joules=0.05), point("torch", "bf16", 8, 30.0, joules=0.0375)])
    assert from_4.energy_at(2) == pytest.approx(0.05 * 1.5)
    assert from_4.energy_at(6) == pytest.approx((0.05 + 0.0375) / 2)  # between measured batches: interpolated
    assert from_4.energy_at(64) == pytest.approx(0.0375)
