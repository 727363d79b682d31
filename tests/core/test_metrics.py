import math

import pytest

from hwfit.core import METRIC_DIRECTIONS, OBJECTIVE_METRICS, direction, to_minimise, worst


def test_every_objective_optimises_a_metric_with_a_direction():
    assert set(OBJECTIVE_METRICS) == {"cost", "energy", "latency", "throughput"}
    assert all(metric in METRIC_DIRECTIONS for metric in OBJECTIVE_METRICS.values())


def test_lower_is_better_scale_negates_higher_is_better_metrics_and_ranks_unknown_last():
    assert to_minimise("p99_ms", 12.0) == 12.0
    assert to_minimise("capacity_rps", 300.0) < to_minimise("capacity_rps", 200.0)
    assert to_minimise("capacity_rps", 0.0) == math.inf  # nothing to offer ranks last
    assert to_minimise("cost_per_million", None) == math.inf
    assert to_minimise("p99_ms", float("nan")) == math.inf
    assert worst("p99_ms") == math.inf and worst("capacity_rps") == 0.0
    with pytest.raises(KeyError, match="no direction for metric 'speed'"):
        direction("speed")
