"""The choice of a pool's max batch size and max queue delay (plan/batching.py) on a known curve."""

from hwfit.plan import BatchingChoice, NoBatchingFit, choose_batching

# s(b) = 2 + 0.5·b ms, given by two points: the rest is interpolated or extrapolated
LINEAR = {1: 2.5, 8: 6.0}


def test_choose_batching_picks_larger_batches_at_higher_rates():
    chosen = [choose_batching(LINEAR, 1, rate, 12.0, prefer="smallest") for rate in (100, 400, 800)]
    assert all(isinstance(choice, BatchingChoice) for choice in chosen)
    sizes = [choice.max_batch for choice in chosen]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    for choice in chosen:
        assert choice.p99_ms <= 12.0  # confirmed by simulation, not only estimated
        assert choice.simulated >= 1 and choice.considered > choice.simulated


def test_choose_batching_default_meets_target_and_stays_stable():
    choice = choose_batching(LINEAR, 2, 1500.0, 12.0)
    assert choice and choice.p99_ms <= 12.0 and choice.stats.stable
    assert choice.capacity_rps > 1500.0


def test_choose_batching_says_how_close_an_infeasible_target_gets():
    # s(1) = 2.5 ms: no configuration can answer in 2 ms
    result = choose_batching(LINEAR, 1, 100.0, 2.0)
    assert isinstance(result, NoBatchingFit) and not result
    assert "2 ms is not reachable" in result.reason and "the best is" in result.reason
    assert result.best_p99_ms > 2.0 and result.best is not None
