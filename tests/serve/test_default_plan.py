"""`hwfit serve MODEL`'s start-up search: it stays within its budget, chooses the (layout, max batch) of
the most measured capacity within the deadline and says why, and falls back to a safe layout, saying
so, when the model is too slow to measure within the budget."""

from __future__ import annotations

import time

import pytest

from hwfit.core import HwfitError
from hwfit.models import load_model
from hwfit.serve.scheduler.default_plan import (
    BATCH_SIZES,
    DEFAULT_LATENCY_P99_MS,
    Layout,
    LayoutTimes,
    _choose,
    candidate_layouts,
    default_plan,
    describe,
    search_layout,
)
from tests.serve.emulation import write_small_onnx_model


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return load_model(str(write_small_onnx_model(tmp_path_factory.mktemp("model") / "small.onnx")))


def test_layouts_fill_the_cores_one_replica_on_all_first():
    assert candidate_layouts(1) == [Layout(1, 1)]
    assert candidate_layouts(2) == [Layout(1, 2), Layout(2, 1)]
    assert candidate_layouts(8) == [Layout(1, 8), Layout(8, 1), Layout(2, 4), Layout(4, 2)]


@pytest.mark.timeout(120)
def test_the_search_stays_within_its_budget_and_prints_its_choice(small):
    budget_s = 1.5
    started = time.perf_counter()
    chosen = default_plan(small, budget_s)
    took_s = time.perf_counter() - started
    search = chosen.search
    # bounded: the budget, plus at most one step that was predicted to fit (and the plan's making)
    assert search.elapsed_s <= budget_s + 1.0 and took_s <= budget_s + 2.0
    assert search.fallback is None and search.points >= 2
    pool = chosen.plan.pools[0]
    assert (pool.replicas_per_device, pool.threads, pool.max_batch_size) == (
        search.chosen.layout.replicas,
        search.chosen.layout.threads,
        search.chosen.max_batch,
    )
    # which layout wins is test_the_choice_is_the_most_capacity_...'s subject: this model's batches take 5-6 us; the
    # plan's times round to 0.001 ms, so their capacities differ by rounding (6.4M vs 16M req/s in one CI run)
    assert pool.service_ms == {b: ms for b, ms in search.chosen.service_ms.items()}
    text = chosen.description
    assert f"{search.chosen.layout.text}, max batch {search.chosen.max_batch}" in text
    assert "the most requests within the default 1000 ms deadline" in text
    assert f"start-up budget {budget_s:g} s, --startup-budget-s to change" in text
    assert chosen.plan.answer.startswith("default plan: small on ONNX Runtime fp32 CPU")


@pytest.mark.timeout(120)
def test_a_model_too_slow_for_the_budget_gets_a_safe_layout_and_says_so(small):
    chosen = default_plan(small, 0.0)  # no time at all: only batch 1 on the first layout is measured
    search = chosen.search
    assert search.points == 1 and search.fallback is not None
    assert "too slow to search within the 0 s start-up budget" in search.fallback
    pool = chosen.plan.pools[0]
    assert (pool.replicas_per_device, pool.max_batch_size) == (1, 1)  # one replica on every core, no batching
    assert (
        "a safe layout, not a searched one" in chosen.description and "Raise --startup-budget-s" in chosen.description
    )
    assert "not measured within the budget" in chosen.description


def test_the_choice_is_the_most_capacity_and_within_3_percent_the_fastest_single_request():
    one_on_all = LayoutTimes(Layout(1, 2), {1: 4.0, 2: 7.0, 4: 13.0, 8: 25.0}, 0.1)  # b8: 320 req/s
    two_on_one = LayoutTimes(Layout(2, 1), {1: 7.0, 2: 13.0, 4: 25.0, 8: 49.0}, 0.1)  # b8: 326.5 req/s
    search = _choose([one_on_all, two_on_one], BATCH_SIZES, 6.0, 2.0, ())
    assert search.fallback is None
    # 2x1 b8 has the most capacity, but 1x2 b8 is within 3% of it and answers one request in 4 ms, not 7
    assert (search.chosen.layout, search.chosen.max_batch) == (Layout(1, 2), 8)
    text = describe(search)
    assert "the best capacity is 327 req/s" in text and "fastest single request" in text
    clear_winner = LayoutTimes(Layout(2, 1), {1: 7.0, 2: 12.0, 4: 20.0, 8: 36.0}, 0.1)  # b8: 444 req/s
    search = _choose([one_on_all, clear_winner], BATCH_SIZES, 6.0, 2.0, ())
    assert (search.chosen.layout, search.chosen.max_batch) == (Layout(2, 1), 8)


def test_on_a_plateau_the_largest_max_batch_within_3_percent_is_chosen():
    # measured at the model's default input: b2, b4 and b8 within 3% of each other; smaller real requests
    # gain from the larger batch, and a lone request does not wait for it
    plateau = LayoutTimes(Layout(2, 1), {1: 6.0, 2: 8.0, 4: 16.2, 8: 32.6}, 0.1)  # b2 500, b4 494, b8 491 req/s
    search = _choose([plateau], BATCH_SIZES, 6.0, 2.0, ())
    assert (search.chosen.layout, search.chosen.max_batch) == (Layout(2, 1), 8)
    steep = LayoutTimes(Layout(2, 1), {1: 6.0, 2: 8.0, 4: 18.0, 8: 40.0}, 0.1)  # b4 444, b8 400: past 3%
    assert _choose([steep], BATCH_SIZES, 6.0, 2.0, ()).chosen.max_batch == 2


def test_batches_that_take_too_much_of_the_deadline_are_not_chosen_and_a_hopeless_model_is_safe():
    slow_batches = LayoutTimes(Layout(1, 2), {1: 100.0, 2: 190.0, 4: 370.0}, 0.1)
    search = _choose([slow_batches], BATCH_SIZES, 6.0, 2.0, ())
    assert search.chosen.max_batch <= 2  # a 370 ms batch is over a quarter of the 1000 ms deadline
    hopeless = LayoutTimes(Layout(1, 2), {1: 2000.0, 2: 3900.0}, 0.1)
    search = _choose([hopeless], BATCH_SIZES, 6.0, 9.0, ())
    assert search.fallback is not None and "no batch size serves within the default 1000 ms" in search.fallback
    assert search.deadline_ms == 8000.0 > DEFAULT_LATENCY_P99_MS  # room for the model: 4x its batch-1 time


def test_a_budget_that_is_not_a_number_of_seconds_is_refused(small):
    with pytest.raises(HwfitError, match="start-up budget must be a number of seconds >= 0"):
        default_plan(small, -1.0)


@pytest.mark.timeout(120)
def test_a_model_that_does_not_batch_is_searched_at_batch_1_only(small, monkeypatch):
    import hwfit.serve.scheduler.default_plan as module

    monkeypatch.setattr(module, "batchable", lambda spec: False)
    search = search_layout(small, 1.0)
    assert all(set(times.service_ms) == {1} for times in search.measured)
    assert search.fallback is None and search.chosen.max_batch == 1


def test_the_cli_default_budget_is_the_librarys():
    from hwfit.cli import serve as cli_serve
    from hwfit.serve.scheduler.default_plan import DEFAULT_STARTUP_BUDGET_S

    assert cli_serve.DEFAULT_STARTUP_BUDGET_S == DEFAULT_STARTUP_BUDGET_S
