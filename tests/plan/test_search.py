"""The measure-few search against an exhaustive grid with a known truth: it must find (within 2%)
the configuration the exhaustive plan finds, measuring at most 10% of the grid (the default budget)."""

from __future__ import annotations

import math

import pytest

from hwfit.plan import DeviceOffer, Grid, ModelRef, PlanRequest, make_plan, parse_slo, verify_plan
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


def _accurate(limit):
    return [m for m in GRID if 1.0 - m.cosine_mean <= limit]


def _wider_slos():
    """The bench's wider set (bench/plan_search.py), relative to this grid: accuracy-bound, near
    capacity, tight latency with an energy objective."""
    best_rate = max(m.samples_per_s for m in _accurate(0.01))
    fastest = min(m.latency.mean_ms for m in _accurate(0.01) if m.variant["batch_size"] == 1)
    slos = {}
    for limit in (0.001, 0.005):
        rate = max(m.samples_per_s for m in _accurate(limit))
        quick = min(m.latency.mean_ms for m in _accurate(limit) if m.variant["batch_size"] == 1)
        for objective, p99, share in (("throughput", 40, 0.3), ("cost", 3, 0.2), ("latency", 12, 0.3)):
            slos[f"loss <= {limit}, {objective}"] = {
                "latency_p99_ms": p99 * quick,
                "throughput_rps": share * rate,
                "max_accuracy_loss": limit,
                "objective": objective,
            }
    for share, objective in ((0.6, "cost"), (0.75, "energy"), (0.9, "throughput")):
        slos[f"near capacity {share:.0%}, {objective}"] = {
            "latency_p99_ms": 200 * fastest,
            "throughput_rps": math.floor(share * best_rate * 100) / 100,
            "headroom": 0.9,
            "objective": objective,
        }
    slos["tight latency, energy"] = {
        "latency_p99_ms": 3 * fastest,
        "throughput_rps": 0.1 * best_rate,
        "objective": "energy",
    }
    return slos


WIDER = _wider_slos()
FIELD = {"cost": "cost_per_million", "energy": "j_per_inference", "latency": "p99_ms", "throughput": "capacity_rps"}


def _true_value(plan, slo):
    """The plan's pool simulated on the whole grid (not the plan's own expectation): it must meet
    the SLO there, and this is its objective there."""
    (truth,) = verify_plan(plan, GRID, slo, OFFERS, 0.01)
    assert not truth.broke, (plan.pools[0].variant, truth.broke)
    return getattr(truth, FIELD[slo.objective])


def _assert_within_2_percent(slo, exhaustive, searched):
    best, found = _true_value(exhaustive, slo), _true_value(searched, slo)
    chosen = (searched.pools[0].variant, searched.pools[0].replicas_per_device, exhaustive.pools[0].variant)
    if slo.objective == "throughput":
        assert found >= best * 0.98, chosen
    else:
        assert found <= best * 1.02, chosen


@pytest.mark.parametrize("name", list(SLOS) + list(WIDER))
def test_search_matches_the_exhaustive_best_within_2_percent_measuring_at_most_10_percent(name):
    slo = parse_slo({**(SLOS | WIDER)[name], "devices": {"cpu": {"count": 1}}})
    exhaustive = _plan(slo, known=GRID)
    oracle = Oracle()
    searched = _plan(slo, known=[], measure=oracle)
    assert exhaustive.feasible and searched.feasible
    assert len(oracle.asked) <= math.ceil(0.10 * len(GRID)), oracle.asked
    assert searched.search.measured == len(oracle.asked) and searched.search.grid_size == len(GRID)
    _assert_within_2_percent(slo, exhaustive, searched)


def test_the_judge_is_the_grid_not_the_plans_own_expectation():
    """A plan whose expectation rests on few points is judged on every point of its configuration:
    the same pool simulated on the grid, whatever the plan expected."""
    slo = parse_slo({**SLOS["throughput-bound, energy"], "devices": {"cpu": {"count": 1}}})
    few = [m for m in GRID if m.variant["batch_size"] in (8, 64)]  # the curve in between is a straight line
    plan = _plan(slo, known=few)
    (truth,) = verify_plan(plan, GRID, slo, OFFERS, 0.01)
    pool = plan.pools[0]
    assert (truth.max_batch, truth.max_queue_delay_ms, truth.units) == (
        pool.max_batch_size,
        pool.max_queue_delay_ms,
        pool.devices,
    )
    assert truth.p99_how == "simulation"
    assert truth.j_per_inference != pytest.approx(plan.expected.j_per_inference, rel=1e-3)


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
