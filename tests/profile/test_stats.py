"""Statistics on known distributions: percentiles, the median's CI coverage, the stopping rules."""

import numpy as np
import pytest

from hwfit.profile.stats import StopRule, WarmupRule, ci_relative_half_width, latency_summary, median_ci95


def test_percentiles_of_a_known_sample():
    latencies = np.arange(1, 1001) / 1000.0  # 1..1000 ms
    summary = latency_summary(latencies)
    assert summary["p50_ms"] == pytest.approx(500.5)
    assert summary["p99_ms"] == pytest.approx(990.01)
    assert summary["min_ms"] == 1.0 and summary["max_ms"] == 1000.0 and summary["count"] == 1000


def test_median_ci_covers_the_true_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    true_median = np.exp(0.0)  # lognormal(0, 0.5) has median 1
    trials = 2000
    covered = 0
    for _ in range(trials):
        low, high = median_ci95(rng.lognormal(0.0, 0.5, size=41))
        covered += low <= true_median <= high
    assert 0.93 <= covered / trials <= 0.985


def test_ci_narrows_with_more_runs():
    rng = np.random.default_rng(1)
    few = ci_relative_half_width(rng.normal(10, 1, 20))
    many = ci_relative_half_width(rng.normal(10, 1, 2000))
    assert many < few / 5


def test_stop_rule_needs_enough_runs_and_a_tight_interval():
    rule = StopRule(target_rel=0.02, min_runs=10, min_seconds=0.0, budget_s=5)
    rng = np.random.default_rng(2)
    tight = list(rng.normal(0.010, 0.0001, 50))
    noisy = list(rng.lognormal(np.log(0.010), 0.8, 50))
    assert rule.settled(tight, elapsed_s=1.0)
    assert not rule.settled(tight[:5], elapsed_s=1.0)
    assert not rule.settled(noisy, elapsed_s=1.0)
    assert rule.exhausted(5.0) and not rule.exhausted(4.9)


def test_warmup_waits_for_a_drop_to_pass():
    rule = WarmupRule(window=5, tolerance_rel=0.05, min_runs=3)
    cold = [0.050, 0.030, 0.020, 0.015, 0.012, 0.011, 0.010, 0.010, 0.010, 0.010]
    assert not rule.settled(cold)
    assert rule.settled(cold + [0.010] * 5)
