"""The measure-few search against an exhaustive grid with a known truth: it must find (within 2%)
the configuration the exhaustive plan finds, measuring at most 10% of the grid (the default budget)."""

from __future__ import annotations

import math

import pytest

from hwfit.plan import DeviceOffer, Grid, ModelRef, PlanRequest, make_plan, parse_slo
from tests.plan._points import point

BATCHES = (1, 2, 4, 8, 16, 32, 64)
LAYOUTS = ((1, 2), (1, 1), (2, 1))  # (replicas, threads) on 2 cores
# family -> (ms per batch at b=1 with 2 threads, ms per extra sample, 1 - cosine)
FAMILIES = {
    ("ort", "fp32"): (9.0, 7.0, 0.0),
    ("ort", "int8-dynamic"): (5.0, 3.3, 0.006),
    ("ort", "int8-static"): (7.0, 5.0, 0.009),
    ("openvino", "fp32"): (8.0, 6.5, 0.0),
    ("openvino", "bf16"): (6.0, 4.2, 0.004),
    ("openvino", "int8-static"): (5.5, 4.4, 0.009),
    ("torch", "fp32"): (12.0, 8.5, 0.0),
    ("torch", "bf16"): (8.0, 4.8, 0.004),
    ("torch", "int8-dynamic"): (4.0, 3.0, 0.021),
    ("torch-compile", "fp32"): (10.0, 7.5, 0.0),
    ("torch-compile", "bf16"): (7.0, 4.1, 0.004),
}
# layout -> (slowdown of a batch vs 1 replica x 2 threads, at small and at large batch)
LAYOUT_SLOWDOWN = {(1, 2): (1.0, 1.0), (1, 1): (1.25, 1.85), (2, 1): (1.35, 2.05)}


def truth(backend, precision, batch, replicas, threads):
    base, per_sample, loss = FAMILIES[(backend, precision)]
    small, large = LAYOUT_SLOWDOWN[(replicas, threads)]
    blend = math.log2(batch) / 6.0
    ms = (base + per_sample * (batch - 1)) * (small + (large - small) * blend)
    # a family-specific wrinkle, so no two curves are the same shape
    ms *= 1.0 + 0.04 * math.sin(batch * (len(backend) + len(precision)))
    joules = 0.9 * replicas * threads * ms / 1000.0 / batch / replicas
    return point(backend, precision, batch, ms, threads=threads, replicas=replicas, cosine=1.0 - loss, joules=joules)


GRID = [truth(b, p, batch, r, t) for (b, p) in FAMILIES for (r, t) in LAYOUTS for batch in BATCHES]
OFFERS = {"cpu": DeviceOffer("cpu", 1, 0.10, "test", cores=2)}


class Oracle:
    """Answers measure() from the exhaustive grid and counts what was asked."""

    def __init__(self):
        self.by_key = {m.variant_key: m for m in GRID}
        self.asked: list[str] = []

    def __call__(self, variants):
        self.asked += [v.key for v in variants]
        return [self.by_key[v.key] for v in variants]


def _plan(slo, known, measure=None):
    request = PlanRequest(
        model=ModelRef(name="m", source="m", hash="h"),
        grid=Grid.from_variants([m.as_variant() for m in GRID]),
        known=known,
        offers=OFFERS,
        measure=measure,
        default_accuracy_loss=0.01,
    )
    return make_plan(request, slo)


SLOS = {
    "latency-bound, cost": {"latency_p99_ms": 40, "throughput_rps": 30, "objective": "cost"},
    "throughput-bound, energy": {"latency_p99_ms": 1000, "throughput_rps": 150, "objective": "energy"},
    "latency objective": {"latency_p99_ms": 200, "throughput_rps": 60, "objective": "latency"},
    "throughput objective": {"latency_p99_ms": 500, "throughput_rps": 100, "objective": "throughput"},
}


def _value(plan, objective):
    expected = plan.expected
    return {
        "cost": expected.cost_per_million,
        "energy": expected.j_per_inference,
        "latency": expected.p99_ms,
        "throughput": -expected.capacity_rps,
    }[objective]


@pytest.mark.parametrize("name", list(SLOS))
def test_search_matches_the_exhaustive_best_within_2_percent_measuring_at_most_10_percent(name):
    slo = parse_slo({**SLOS[name], "devices": {"cpu": {"count": 1}}})
    exhaustive = _plan(slo, known=GRID)
    oracle = Oracle()
    searched = _plan(slo, known=[], measure=oracle)
    assert exhaustive.feasible and searched.feasible
    assert len(oracle.asked) <= math.ceil(0.10 * len(GRID)), oracle.asked
    assert searched.search.measured == len(oracle.asked) and searched.search.grid_size == len(GRID)
    best, found = _value(exhaustive, slo.objective), _value(searched, slo.objective)
    if slo.objective == "throughput":
        best, found = -best, -found
        assert found >= best * 0.98, (searched.pools[0].variant, exhaustive.pools[0].variant)
    else:
        assert found <= best * 1.02, (searched.pools[0].variant, exhaustive.pools[0].variant)


def test_search_never_measures_a_point_twice_and_screens_every_family():
    oracle = Oracle()
    _plan(parse_slo({**SLOS["latency-bound, cost"], "devices": {"cpu": {"count": 1}}}), known=[], measure=oracle)
    assert len(oracle.asked) == len(set(oracle.asked))
    screened = {tuple(key.split("/")[:3]) for key in oracle.asked}
    assert {(str(b), "cpu", p) for b, p in FAMILIES} <= screened


def test_a_spent_budget_is_said_in_the_plan():
    oracle = Oracle()
    slo = parse_slo({**SLOS["latency objective"], "devices": {"cpu": {"count": 1}}})
    request = PlanRequest(
        model=ModelRef(name="m", source="m", hash="h"),
        grid=Grid.from_variants([m.as_variant() for m in GRID]),
        known=[],
        offers=OFFERS,
        measure=oracle,
        budget=12,
        default_accuracy_loss=0.01,
    )
    plan = make_plan(request, slo)
    assert len(oracle.asked) <= 12
    assert "budget is spent" in plan.search.method
    assert any("stopped before convergence" in note for note in plan.assumptions)


def test_infeasible_slo_is_answered_without_spending_the_whole_grid():
    oracle = Oracle()
    slo = parse_slo({"latency_p99_ms": 1, "throughput_rps": 500, "objective": "cost", "devices": {"cpu": {"count": 1}}})
    plan = _plan(slo, known=[], measure=oracle)
    assert not plan.feasible
    assert len(oracle.asked) <= math.ceil(0.10 * len(GRID))
    assert plan.infeasible.message
