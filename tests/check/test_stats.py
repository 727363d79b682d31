"""The gate's statistics on samples with known answers: exact Mann-Whitney p-values (checked
against enumeration and published table values), the bootstrap interval, and the decision rule."""

import itertools

import numpy as np
import pytest

from hwfit.check import DEFAULT_METRICS, compare_samples, mann_whitney_p, median_change_ci, smallest_p
from hwfit.check.stats import paired_change_ci, signed_rank_p


def _enumerated_p(baseline, candidate):
    """P(rank sum of the candidate >= observed) over every way of labelling the pooled values."""
    pooled = list(baseline) + list(candidate)
    order = sorted(pooled)
    ranks = [sum(1 for v in order if v < x) + (sum(1 for v in order if v == x) + 1) / 2 for x in pooled]
    observed = sum(ranks[len(baseline) :])
    sums = [sum(ranks[i] for i in chosen) for chosen in itertools.combinations(range(len(pooled)), len(candidate))]
    return sum(1 for s in sums if s >= observed - 1e-9) / len(sums)


def test_complete_separation_gives_one_over_the_number_of_labellings():
    assert mann_whitney_p([1, 2, 3], [4, 5, 6], "greater") == pytest.approx(1 / 20)
    assert mann_whitney_p([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], "greater") == pytest.approx(1 / 924)
    assert mann_whitney_p([1, 2, 3], [4, 5, 6], "less") == pytest.approx(1.0)
    assert smallest_p(6, 6) == pytest.approx(1 / 924) and smallest_p(1, 6) == pytest.approx(1 / 7)


def test_table_value_for_five_and_five():
    # U = 2 for the candidate being smaller: P(U <= 2) = 4/252 = 0.0159 (Mann & Whitney 1947, n1 = n2 = 5)
    assert mann_whitney_p([10, 11, 13, 14, 15], [1, 2, 3, 4, 12], "less") == pytest.approx(4 / 252)


@pytest.mark.parametrize("seed", range(6))
def test_exact_p_with_ties_matches_enumeration(seed):
    rng = np.random.default_rng(seed)
    baseline = list(np.round(rng.normal(0, 1, 5), 0))
    candidate = list(np.round(rng.normal(0.7, 1, 6), 0))  # rounding makes ties
    assert mann_whitney_p(baseline, candidate, "greater") == pytest.approx(_enumerated_p(baseline, candidate))


def test_matches_scipy_exact_and_asymptotic():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    small_a, small_b = rng.normal(0, 1, 7), rng.normal(0.8, 1, 8)
    expected = stats.mannwhitneyu(small_b, small_a, alternative="greater", method="exact").pvalue
    assert mann_whitney_p(small_a, small_b, "greater") == pytest.approx(expected)
    big_a, big_b = rng.normal(0, 1, 60), rng.normal(0.3, 1, 60)  # above EXACT_LIMIT: normal approximation
    expected = stats.mannwhitneyu(big_b, big_a, alternative="greater", method="asymptotic").pvalue
    assert mann_whitney_p(big_a, big_b, "greater") == pytest.approx(expected, rel=1e-6)


def test_identical_samples_give_no_evidence():
    assert mann_whitney_p([1.0] * 6, [1.0] * 6, "greater") == pytest.approx(1.0)


def test_bootstrap_interval_holds_the_true_change_and_is_repeatable():
    rng = np.random.default_rng(3)
    baseline = 10.0 * (1 + rng.normal(0, 0.01, 8))
    candidate = 10.5 * (1 + rng.normal(0, 0.01, 8))
    change, low, high = median_change_ci(baseline, candidate, relative=True)
    assert low < 0.05 < high and low <= change <= high
    assert median_change_ci(baseline, candidate, relative=True) == (change, low, high)
    absolute, _, _ = median_change_ci([0.0, 0.0, 0.0], [0.02, 0.02, 0.02], relative=False)
    assert absolute == pytest.approx(0.02)


def _rounds(rng, centre, noise, count=6):
    return list(centre * (1 + rng.normal(0, noise, count)))


def test_decision_on_synthetic_latency_of_known_size():
    rng = np.random.default_rng(11)
    p50 = DEFAULT_METRICS["p50_ms"]  # fail at 3%, warn at 1.5%
    assert compare_samples(p50, _rounds(rng, 1.0, 0.005), _rounds(rng, 1.10, 0.005), 0.01).verdict == "fail"
    assert compare_samples(p50, _rounds(rng, 1.0, 0.002), _rounds(rng, 1.02, 0.002), 0.01).verdict == "warn"
    assert compare_samples(p50, _rounds(rng, 1.0, 0.005), _rounds(rng, 0.90, 0.005), 0.01).verdict == "improved"
    same = compare_samples(p50, _rounds(rng, 1.0, 0.005), _rounds(rng, 1.0, 0.005), 0.01)
    assert same.verdict == "pass" and abs(same.change) < 0.02


def test_a_large_change_without_significance_passes_saying_so():
    noisy = compare_samples(
        DEFAULT_METRICS["p50_ms"], [1.0, 1.3, 0.8, 1.2, 0.9, 1.1], [1.05, 1.4, 0.9, 1.3, 1.0, 1.2], 0.01
    )
    assert noisy.change > 0.03 and noisy.p_worse > 0.01 and noisy.verdict == "pass"
    assert "not significant" in noisy.reason


def test_throughput_is_worse_when_it_falls():
    throughput = DEFAULT_METRICS["samples_per_s"]
    result = compare_samples(throughput, [100, 101, 99, 100, 102, 100], [90, 91, 89, 90, 92, 90], 0.01)
    assert result.verdict == "fail" and result.change == pytest.approx(-0.1, abs=0.01) and result.worse_by > 0


def test_accuracy_is_compared_as_a_difference():
    loss = DEFAULT_METRICS["accuracy_loss"]  # absolute: fail at +0.01
    assert compare_samples(loss, [0.0] * 6, [0.03] * 6, 0.01).verdict == "fail"
    assert compare_samples(loss, [0.0] * 6, [0.001] * 6, 0.01).verdict == "pass"


def test_memory_below_its_floor_is_never_flagged():
    memory = DEFAULT_METRICS["peak_rss_delta_bytes"]  # 10% but at least 16 MiB
    mib = 2**20
    assert compare_samples(memory, [10 * mib] * 6, [20 * mib] * 6, 0.01).verdict == "pass"
    assert compare_samples(memory, [100 * mib] * 6, [130 * mib] * 6, 0.01).verdict == "fail"


def test_too_few_rounds_cannot_be_judged_rather_than_pass():
    result = compare_samples(DEFAULT_METRICS["p50_ms"], [1.0], [2.0] * 6, 0.01)
    assert result.verdict == "incomparable" and "best possible is 0.143" in result.reason


def test_false_alarm_rate_on_identical_distributions_is_below_alpha():
    """A/A on skewed, heavy-tailed rounds (a log-normal core plus a round in ten that lost its core):
    the rank test plus the minimum effect keeps false alarms under alpha."""
    rng = np.random.default_rng(5)
    p50 = DEFAULT_METRICS["p50_ms"]

    def rounds(spread=0.02, outliers=0.1):
        values = np.exp(rng.normal(0, spread, 6))
        values[rng.random(6) < outliers] *= 1.3
        return list(values)

    alarms = sum(compare_samples(p50, rounds(), rounds(), 0.01).verdict == "fail" for _ in range(2000))
    assert alarms / 2000 <= 0.01
    # with the spread of p50 between fresh processes here (about 1%), a 5% regression is caught
    detected = sum(
        compare_samples(p50, rounds(0.01, 0), [v * 1.05 for v in rounds(0.01, 0)], 0.01).verdict == "fail"
        for _ in range(300)
    )
    assert detected / 300 >= 0.95


def _enumerated_signed_rank_p(differences):
    """P(sum of the positive ranks >= observed) over every sign pattern (zeros dropped, mid-ranks)."""
    values = [d for d in differences if d != 0]
    magnitudes = sorted(abs(v) for v in values)
    ranks = [
        sum(1 for m in magnitudes if m < abs(v)) + (sum(1 for m in magnitudes if m == abs(v)) + 1) / 2 for v in values
    ]
    observed = sum(r for r, v in zip(ranks, values) if v > 0)
    sums = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product([0, 1], repeat=len(values))]
    return sum(1 for s in sums if s >= observed - 1e-9) / len(sums)


@pytest.mark.parametrize("seed", range(6))
def test_signed_rank_p_with_ties_and_zeros_matches_enumeration(seed):
    differences = list(np.round(np.random.default_rng(seed).normal(0.4, 1, 9), 0))  # ties and zeros
    assert signed_rank_p(differences, "greater") == pytest.approx(_enumerated_signed_rank_p(differences))


def test_signed_rank_matches_scipy_and_its_smallest_value():
    stats = pytest.importorskip("scipy.stats")
    differences = np.random.default_rng(9).normal(0.3, 1, 12)
    expected = stats.wilcoxon(differences, alternative="greater", method="exact").pvalue
    assert signed_rank_p(differences, "greater") == pytest.approx(expected)
    assert signed_rank_p([0.1] * 7, "greater") == pytest.approx(1 / 128)
    assert signed_rank_p([0.0] * 7, "greater") == 1.0


def test_pairing_cancels_drift_that_hides_a_regression_from_the_unpaired_test():
    """The machine drifts by 10% over the rounds; the candidate is 4% slower in every pair."""
    drift = np.linspace(0.95, 1.05, 10)
    baseline = list(drift)
    candidate = list(drift * 1.04 * (1 + np.random.default_rng(2).normal(0, 0.002, 10)))
    p50 = DEFAULT_METRICS["p50_ms"]
    unpaired = compare_samples(p50, baseline, candidate, 0.01)
    paired = compare_samples(p50, baseline, candidate, 0.01, paired=True)
    assert unpaired.verdict == "pass" and unpaired.p_worse > 0.01
    assert paired.verdict == "fail" and paired.p_worse == pytest.approx(1 / 1024)
    assert paired.change == pytest.approx(0.04, abs=0.005) and paired.ci_low > 0.03
    change, low, high = paired_change_ci(baseline, candidate, relative=True)
    assert low <= change <= high


def test_paired_rounds_need_seven_pairs_to_ever_fail():
    p50 = DEFAULT_METRICS["p50_ms"]
    six = compare_samples(p50, [1.0] * 6, [2.0] * 6, 0.01, paired=True)
    assert six.verdict == "incomparable" and "6 paired rounds" in six.reason
    assert compare_samples(p50, [1.0] * 7, [2.0] * 7, 0.01, paired=True).verdict == "fail"
