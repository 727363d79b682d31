"""The measure-few search against an exhaustive grid with a known truth: it must find (within 2%)
the configuration the exhaustive plan finds, measuring at most 10% of the grid (the default budget)."""

from __future__ import annotations

import importlib
import math
from dataclasses import replace

import pytest

from hwfit.core import Variant
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


def truth(backend, precision, batch, replicas, threads, jitter=0.05):
    base, per_sample, loss = FAMILIES[(backend, precision)]
    small, large = LAYOUT_SLOWDOWN[(replicas, threads)]
    blend = math.log2(batch) / 6.0
    ms = (base + per_sample * (batch - 1)) * (small + (large - small) * blend)
    # a family-specific wrinkle, so no two curves are the same shape
    ms *= 1.0 + 0.04 * math.sin(batch * (len(backend) + len(precision)))
    joules = 0.9 * replicas * threads * ms / 1000.0 / batch / replicas
    return point(
        backend,
        precision,
        batch,
        ms,
        threads=threads,
        replicas=replicas,
        cosine=1.0 - loss,
        joules=joules,
        jitter=jitter,
    )


GRID = [truth(b, p, batch, r, t) for (b, p) in FAMILIES for (r, t) in LAYOUTS for batch in BATCHES]
OFFERS = {"cpu": DeviceOffer("cpu", 1, 0.10, "test", cores=2)}


class Oracle:
    """Answers measure() from the exhaustive grid and counts what was asked."""

    def __init__(self, grid=None):
        self.by_key = {m.variant_key: m for m in (GRID if grid is None else grid)}
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


# Known short: two families within 3% (openvino bf16 2 x 1 thread at batch 4, torch-compile bf16 at
# batch 8) whose curves wiggle by +-4%; the budget (24 points, 11 of them screening) is spent before the
# runner-up's batch 4 is measured, and the search keeps the measured one (2.9% below). strict: if a
# change of the search closes it, this fails and the mark must go.
CLOSE_CALL = pytest.mark.xfail(strict=True, reason="budget spent before the runner-up within 3% is measured")


@pytest.mark.parametrize(
    "name",
    [pytest.param(name, marks=CLOSE_CALL) if name == "loss <= 0.005, throughput" else name for name in [*SLOS, *WIDER]],
)
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


# --- the causes fixed, each on a grid built to reproduce it -------------------------------------

# Families whose batch shapes differ: the int8 kernels keep gaining to batch 64, the fp32 and bf16
# ones (the only ones within a 0.001 loss) peak near batch 8 and slow down beyond. Each family times
# its layouts alike (a layout only scales the batch time).
SHAPED_FAMILIES = {  # (fixed ms, ms per sample, ms per sample^2, 1 - cosine)
    ("ort", "int8-dynamic"): (3.0, 1.0, 0.0, 0.006),
    ("openvino", "int8-static"): (3.5, 1.1, 0.0, 0.008),
    ("ort", "fp32"): (6.0, 2.5, 0.08, 0.0),
    ("openvino", "fp32"): (5.0, 2.6, 0.1, 0.0),
    ("openvino", "bf16"): (5.0, 2.0, 0.12, 0.0008),
    ("torch", "fp32"): (9.0, 3.5, 0.1, 0.0),
}
SHAPED_LAYOUTS = {(1, 2): 1.0, (1, 1): 1.8, (2, 1): 1.9}  # (replicas, threads) -> batch time vs 1 x 2 threads
SHAPED = [
    point(
        backend,
        precision,
        batch,
        (fixed + per_sample * batch + squared * batch * batch) * slowdown,
        threads=threads,
        replicas=replicas,
        cosine=1.0 - loss,
        joules=0.9 * threads * (fixed + per_sample * batch) * slowdown / 1000.0 / batch,
    )
    for (backend, precision), (fixed, per_sample, squared, loss) in SHAPED_FAMILIES.items()
    for (replicas, threads), slowdown in SHAPED_LAYOUTS.items()
    for batch in BATCHES
]


def _plan_on(grid, slo, known, measure=None, budget=None):
    request = PlanRequest(
        model=ModelRef(name="m", source="m", hash="h"),
        grid=Grid.from_variants([m.as_variant() for m in grid]),
        known=known,
        offers=OFFERS,
        measure=measure,
        budget=budget,
        default_accuracy_loss=0.01,
    )
    return make_plan(request, slo)


def _search_and_judge(grid, slo):
    """The search's plan (within the default budget) and the exhaustive one, both judged on `grid`:
    (searched plan, its truth, the exhaustive plan's truth, the points the search asked for)."""
    oracle = Oracle(grid)
    searched = _plan_on(grid, slo, known=[], measure=oracle)
    exhaustive = _plan_on(grid, slo, known=grid)
    assert len(oracle.asked) <= math.ceil(0.10 * len(grid))
    (found,) = verify_plan(searched, grid, slo, OFFERS, 0.01)
    (best,) = verify_plan(exhaustive, grid, slo, OFFERS, 0.01)
    assert not found.broke
    return searched, found, best, oracle.asked


def test_a_family_the_accuracy_limit_keeps_is_searched_on_its_own_batch_shape():
    """The cause of the accuracy-bound gaps: a family's time at a batch size was estimated from the
    batch shape other families taught (int8: faster per sample to batch 64), so the search measured
    the accurate families at batch 64 on every wide layout in turn, found them slow there each time,
    and spent its budget before reaching their peak. Now the first point measured for a family beyond
    its screening is on its reference layout (one replica, one thread), and the family's time there
    bounds its wider layouts at that batch (ideal scaling): one point rules batch 64 out on all of
    them, and the search reaches the peak at batch 8."""
    accurate = [m for m in SHAPED if 1.0 - m.cosine_mean <= 0.001]
    best = max(accurate, key=lambda m: m.samples_per_s)
    assert best.variant["batch_size"] == 8  # the grid is what the test says it is
    fastest = min(m.latency.mean_ms for m in accurate if m.variant["batch_size"] == 1)
    slo = parse_slo(
        {
            "latency_p99_ms": 40 * fastest,
            "throughput_rps": 0.3 * best.samples_per_s,
            "max_accuracy_loss": 0.001,
            "objective": "throughput",
            "devices": {"cpu": {"count": 1}},
        }
    )
    searched, found, grid_best, _ = _search_and_judge(SHAPED, slo)
    assert found.capacity_rps >= 0.98 * grid_best.capacity_rps, searched.pools[0].variant


@pytest.mark.parametrize("over", [1.05, 1.3])
def test_an_unreachable_rate_reports_the_most_the_grid_can_carry(over):
    """The infeasible answer's "most reachable" was what the search happened to measure (and, for a
    configuration that carried nothing, its largest batch's capacity rather than its best): now the
    search looks for it, and it is the grid's most among configurations accurate enough."""
    accurate = [m for m in GRID if 1.0 - m.cosine_mean <= 0.01]
    most = max(m.samples_per_s for m in accurate)
    slo = parse_slo(
        {
            "latency_p99_ms": 1000,
            "throughput_rps": over * 0.9 * most,
            "headroom": 0.9,
            "objective": "cost",
            "devices": {"cpu": {"count": 1}},
        }
    )
    oracle = Oracle()
    searched = _plan(slo, known=[], measure=oracle)
    exhaustive = _plan(slo, known=GRID)
    assert not searched.feasible and not exhaustive.feasible
    assert len(oracle.asked) <= math.ceil(0.10 * len(GRID))
    assert exhaustive.infeasible.nearest["throughput_rps"] == pytest.approx(0.9 * most, rel=1e-3)
    assert searched.infeasible.nearest["throughput_rps"] >= 0.98 * 0.9 * most
    assert "not reachable; the most is" in searched.infeasible.message


# One family of the CNN's grid as measured on a busy 2-core machine (batch -> mean ms, p99 ms of a
# batch), per layout: batch 2 of 2 x 1 thread is faster than the line through batches 1 and 4.
CNN_INT8 = {
    (1, 1): {1: (0.01728, 0.0302), 2: (0.02264, 0.0331), 4: (0.03299, 0.05084), 8: (0.06053, 0.08724),
             16: (0.18153, 4.13684), 32: (0.2005, 0.23298), 64: (0.38916, 0.45155)},
    (2, 1): {1: (0.02479, 0.02181), 2: (0.02244, 0.03039), 4: (0.06083, 0.05896), 8: (0.08842, 0.08679),
             16: (0.23263, 4.16016), 32: (0.64539, 4.26158), 64: (0.48726, 4.45052)},
    (1, 2): {1: (0.0534, 0.02854), 2: (0.07144, 0.04484), 4: (0.10765, 0.16411), 8: (0.17852, 8.05762),
             16: (0.23908, 4.19725), 32: (0.66553, 8.29492), 64: (1.25575, 8.55768)},
}  # fmt: skip
CNN_GRID = [
    point("ort", "int8-static", batch, mean, threads=threads, replicas=replicas, jitter=p99 / mean - 1.0)
    for (replicas, threads), curve in CNN_INT8.items()
    for batch, (mean, p99) in curve.items()
]


def test_a_binding_p99_rests_on_every_batch_size_the_batcher_forms():
    """The cause of the latency-objective gap on the CNN: the search planned from its B, the batch
    below and the batch mostly formed, the times in between interpolated; on the grid an in-between
    batch size was off the line through its neighbours, and the plan's p99 there was 10.9% worse than
    the grid's best (a latency-bound plan broke its target). Now, where the p99 binds, every batch
    size the batcher forms up to B is measured before a plan is accepted."""
    slo = parse_slo(
        {"latency_p99_ms": 0.207, "throughput_rps": 78800, "objective": "latency", "devices": {"cpu": {"count": 1}}}
    )
    oracle = Oracle(CNN_GRID)
    searched = _plan_on(CNN_GRID, slo, known=[], measure=oracle, budget=10)  # of 21 points: the cause, not the budget
    exhaustive = _plan_on(CNN_GRID, slo, known=CNN_GRID)
    (found,) = verify_plan(searched, CNN_GRID, slo, OFFERS, 0.01)
    (best,) = verify_plan(exhaustive, CNN_GRID, slo, OFFERS, 0.01)
    assert not found.broke
    assert found.p99_ms <= best.p99_ms * 1.02, (searched.pools[0].variant, exhaustive.pools[0].variant)


# Families shaped like the CNN's on a quiet 2-core machine: ONNX Runtime's time grows with the batch
# from a small fixed cost; OpenVINO's has a fixed cost 4x larger (0.06 ms a call), so its screening
# point at batch 8 looks close while its batch 1 is 4x slower. Batch ms on 1 replica x 1 thread =
# fixed + per sample x batch; 2 x 1 runs two of those side by side, 1 x 2 is 0.6x at large batches.
FIXED_COST = {("ort", "int8-static"): (0.010, 0.0061), ("ort", "fp32"): (0.012, 0.0100)}
FIXED_COST |= {("openvino", p): (0.058, per) for p, per in (("int8-static", 0.0048), ("bf16", 0.0062), ("fp32", 0.011))}


def _fixed_cost_point(backend, precision, batch, replicas, threads):
    fixed, per_sample = FIXED_COST[(backend, precision)]
    ms = fixed + per_sample * batch * (1.0 if threads == 1 else 0.6 + 0.4 / batch)
    ms *= 1.0 + 0.03 * math.sin(batch * (len(backend) + len(precision)))
    return point(backend, precision, batch, ms, threads=threads, replicas=replicas, cosine=1.0 - 0.001, jitter=0.3)


FIXED_COST_GRID = [
    _fixed_cost_point(b, p, batch, r, t) for (b, p) in FIXED_COST for (r, t) in LAYOUTS for batch in BATCHES
]


def test_a_latency_objective_measures_the_batches_formed_before_b():
    """The cause of the latency-objective gap on the quiet CNN grid (+18%): for the p99 the search
    measured each candidate's B first (batch 64 of every OpenVINO family, whose screening point at batch 8
    promised a p99 it cannot have: its fixed cost shows only at small batches), spent its budget there,
    and planned batch 4 where the grid's best is batch 2 of the same family. For a latency objective it
    now measures from the batch the batcher mostly forms upwards: one small batch rules a family out."""
    best_rate = max(m.samples_per_s for m in FIXED_COST_GRID)
    slo = parse_slo(
        {
            "latency_p99_ms": 0.2,
            "throughput_rps": 0.3 * best_rate,
            "objective": "latency",
            "devices": {"cpu": {"count": 1}},
        }
    )
    searched, found, best, asked = _search_and_judge(FIXED_COST_GRID, slo)
    assert found.p99_ms <= best.p99_ms * 1.02, (searched.pools[0].variant, asked)


def _noisy_at_large_batches(batch: int) -> float:
    """p99 / mean - 1 of a batch: quiet at batch 1, noisy from batch 2 on."""
    return 0.05 if batch == 1 else 1.5


NOISY = [
    truth(b, p, batch, r, t, jitter=_noisy_at_large_batches(batch))
    for (b, p) in FAMILIES
    for (r, t) in LAYOUTS
    for batch in BATCHES
]


def test_a_p99_only_batch_1_meets_is_found_when_larger_batches_are_noisy():
    """The cause of a feasible SLO planned as infeasible (the CNN's "only batch 1 meets p99"): an
    unmeasured batch took the jitter (p99 - mean) of the measured batch nearest it, so batch 1 of the
    one configuration that meets the bound, measured at batch 16 (here: stored by an earlier plan for
    throughput), carried batch 16's jitter and its estimate broke the p99. On the CNN every other
    estimate broke it too and the search planned the SLO as infeasible; here it settled on another
    family, 7% short. Now an estimated batch's jitter is the least measured jitter scaled by its
    service time: optimistic, like the rest of the estimate."""
    accurate = [m for m in NOISY if 1.0 - m.cosine_mean <= 0.01]
    ones = min(m.latency.p99_ms for m in accurate if m.variant["batch_size"] == 1)
    more = min(m.latency.p99_ms for m in accurate if m.variant["batch_size"] > 1)
    assert ones < 0.9 * more  # the grid is what the test says it is: only batch 1 can meet the bound
    rate = 0.1 * max(m.samples_per_s for m in accurate)
    slo = parse_slo(
        {
            "latency_p99_ms": (ones + more) / 2,
            "throughput_rps": rate,
            "objective": "throughput",
            "devices": {"cpu": {"count": 1}},
        }
    )
    exhaustive = _plan_on(NOISY, slo, known=NOISY)
    assert exhaustive.feasible and exhaustive.pools[0].max_batch_size == 1
    chosen = Variant.parse(exhaustive.pools[0].variant)
    replicas = (("replicas", str(exhaustive.pools[0].replicas_per_device)),)  # as the grid keys 2 x 1 thread
    stored = [m for m in NOISY if m.variant_key == replace(chosen, batch_size=16, knobs=replicas).key]
    oracle = Oracle(NOISY)
    searched = _plan_on(NOISY, slo, known=stored, measure=oracle)
    assert searched.feasible, searched.infeasible.message
    (found,) = verify_plan(searched, NOISY, slo, OFFERS, 0.01)
    (best,) = verify_plan(exhaustive, NOISY, slo, OFFERS, 0.01)
    assert not found.broke and found.capacity_rps >= 0.98 * best.capacity_rps, searched.pools[0].variant


# The grid of GRID, and one more family whose batch time is mostly fixed cost: slow at batch 8, the
# fastest at batch 64 (the CNN's OpenVINO bf16 on a CPU with bf16 matrix units: 64 takes 1.6x batch 8).
FIXED_COST = GRID + [
    point(
        "openvino",
        "fp16",
        batch,
        (40.0 + 0.2 * batch) * LAYOUT_SLOWDOWN[(replicas, threads)][0],
        threads=threads,
        replicas=replicas,
        cosine=1.0 - 0.004,
    )
    for (replicas, threads) in LAYOUTS
    for batch in BATCHES
]


def test_a_family_of_mostly_fixed_cost_is_measured_at_its_largest_batch_before_stopping():
    """The cause of the CNN's throughput gaps (-19.6%): a family screened at batch 8 is carried to
    batch 64 by the batch shape the other families taught (about 7x here); one whose time is mostly
    fixed cost takes 1.3x there, so it looked slower at batch 64 than it is, and the search planned
    it at batch 32 (43% short of its batch 64). Now, before stopping, a family that would win under
    the flattest plausible shape is measured once at its largest batch."""
    best = max(FIXED_COST, key=lambda m: m.samples_per_s)
    assert best.variant["precision"] == "fp16" and best.variant["batch_size"] == 64  # the grid is as said
    at_8 = max((m for m in FIXED_COST if m.variant["batch_size"] == 8), key=lambda m: m.samples_per_s)
    assert at_8.variant["precision"] != "fp16"  # ... and screening at batch 8 does not show it
    slo = parse_slo(
        {
            "latency_p99_ms": 1000,
            "throughput_rps": 0.1 * best.samples_per_s,
            "objective": "throughput",
            "devices": {"cpu": {"count": 1}},
        }
    )
    searched, found, grid_best, _ = _search_and_judge(FIXED_COST, slo)
    assert found.capacity_rps >= 0.98 * grid_best.capacity_rps, searched.pools[0].variant


# Two families with a fixed cost of about 20% of their batch-16 time at batch 1 (MiniLM's PyTorch bf16
# on 1 x 2 threads: 22%), and one with a fast batch 1 on every layout but 2 replicas (MiniLM's OpenVINO
# bf16 as measured, rounded: 9% of batch 16 on 1 x 2 threads; 2 replicas at batch 1 take twice one's time).
FAST_BATCH_ONE = {
    (1, 2): {1: 5.0, 2: 17.2, 4: 20.3, 8: 35.3, 16: 58.3, 32: 143.5, 64: 417.0},
    (1, 1): {1: 6.1, 2: 20.0, 4: 30.0, 8: 52.2, 16: 110.0, 32: 220.0, 64: 442.0},
    (2, 1): {1: 13.0, 2: 22.0, 4: 40.0, 8: 75.0, 16: 150.0, 32: 300.0, 64: 600.0},
}
FAST_ONE = [
    point(
        backend,
        precision,
        batch,
        ms(batch, replicas, threads),
        threads=threads,
        replicas=replicas,
        cosine=1.0 - 0.004,
    )
    for backend, precision, ms in (
        ("torch", "bf16", lambda b, r, t: (8.0 + 2.8 * b) * LAYOUT_SLOWDOWN[(r, t)][0 if b < 8 else 1]),
        ("ort", "fp32", lambda b, r, t: (10.0 + 3.5 * b) * LAYOUT_SLOWDOWN[(r, t)][0 if b < 8 else 1]),
        ("openvino", "bf16", lambda b, r, t: FAST_BATCH_ONE[(r, t)][b]),
    )
    for (replicas, threads) in LAYOUTS
    for batch in BATCHES
]


# What an earlier plan for throughput had measured: each family's screening point, the fast family's
# largest batch, its batch 16 on 1 x 2 threads and its batch 1 on 2 replicas (as MiniLM's search had).
EARLIER = {
    "torch/cpu/bf16/b8/t1",
    "ort/cpu/fp32/b8/t1",
    "openvino/cpu/bf16/b8/t1",
    "openvino/cpu/bf16/b64/t1",
    "openvino/cpu/bf16/b16/t2",
    "openvino/cpu/bf16/b1/t1/replicas=2",
}


def test_a_p99_only_a_fast_batch_1_meets_is_found_though_the_shape_others_teach_says_otherwise():
    """The cause of MiniLM's "only batch 1 meets p99" planned as infeasible: the family that meets it
    was measured at batches 8, 16 and 64 (and at batch 1 on 2 replicas, slow), and its batch 1 on one
    replica was estimated from there with the batch shape the other families taught (their batch 1
    takes 20-35% of a larger batch's time; its own 9-12%): twice too slow, so the p99 broke, every
    other estimate broke it too, and the search stopped on "no configuration meets every
    constraint". Now, before it says so, a family that would meet the p99 were its small batches as
    fast as proportional scaling from its measured ones allows is measured at its smallest batch."""
    slo = parse_slo(
        {"latency_p99_ms": 12.0, "throughput_rps": 20.0, "objective": "throughput", "devices": {"cpu": {"count": 1}}}
    )
    exhaustive = _plan_on(FAST_ONE, slo, known=FAST_ONE)
    assert exhaustive.feasible and exhaustive.pools[0].variant == "openvino/cpu/bf16/b1/t2"  # the grid is as said
    oracle = Oracle(FAST_ONE)
    searched = _plan_on(FAST_ONE, slo, known=[m for m in FAST_ONE if m.variant_key in EARLIER], measure=oracle)
    assert searched.feasible, (searched.infeasible.message, oracle.asked)
    (found,) = verify_plan(searched, FAST_ONE, slo, OFFERS, 0.01)
    (best,) = verify_plan(exhaustive, FAST_ONE, slo, OFFERS, 0.01)
    assert not found.broke and found.capacity_rps >= 0.98 * best.capacity_rps, searched.pools[0].variant
    assert len(oracle.asked) <= math.ceil(0.10 * len(FAST_ONE))


def test_a_search_that_stops_early_bounds_each_unmeasured_batch_by_the_next_measured_one():
    """The cause of the CNN's batch-1 p99 broken on the grid by a search stopped by its budget: a
    configuration measured at batches 8 and 64 only was planned on the line through them, which put
    its smaller batches far below their time (here batch 1 at 6.5 ms: it takes 9.5; a fixed cost the
    line cannot see). Now a search that must stop early (its budget spent, or measuring off as here)
    gives each unmeasured batch size the time of the next measured one above it."""
    plateau = {1: 9.5, 2: 9.6, 4: 9.8, 8: 10.0, 16: 14.0, 32: 22.0, 64: 38.0}  # fixed cost to batch 8
    grid = [point("openvino", "bf16", b, plateau[b]) for b in BATCHES] + [
        point("ort", "fp32", b, 7.0 + 1.0 * b) for b in BATCHES
    ]
    stored = [m for m in grid if m.variant["backend"] == "ort" or m.variant["batch_size"] in (8, 64)]
    slo = parse_slo(
        {"latency_p99_ms": 17.0, "throughput_rps": 10.0, "objective": "latency", "devices": {"cpu": {"count": 1}}}
    )
    exhaustive = _plan_on(grid, slo, known=grid)
    assert exhaustive.feasible and exhaustive.pools[0].backend == "ort"  # the grid is as said
    searched = _plan_on(grid, slo, known=stored)  # measuring off: it must stop where it stands
    assert searched.feasible and "stopped before convergence" in searched.search.method
    (found,) = verify_plan(searched, grid, slo, OFFERS, 0.01)
    (best,) = verify_plan(exhaustive, grid, slo, OFFERS, 0.01)
    assert not found.broke, (searched.pools[0].variant, found.broke)
    assert found.p99_ms <= best.p99_ms * 1.02


def test_a_search_that_stops_early_still_plans_a_configuration_not_measured_at_batch_1():
    """Before the bound above, a search stopped early planned only on batch sizes measured from the
    grid's smallest up: a configuration measured from batch 2 was left out (on MiniLM's grid the plan
    fell to a configuration of twice the cost, or to "no configuration meets every constraint").
    Bounded by batch 2's time, batch 1 keeps it in, and the plan promises no p99 it cannot keep."""
    plateau = {1: 9.5, 2: 9.6, 4: 9.8, 8: 10.0, 16: 14.0, 32: 22.0, 64: 38.0}
    grid = [point("openvino", "bf16", b, plateau[b]) for b in BATCHES] + [
        point("ort", "fp32", b, 7.0 + 1.0 * b) for b in BATCHES
    ]
    stored = [m for m in grid if m.variant["backend"] == "openvino" or m.variant["batch_size"] > 1]
    slo = parse_slo(
        {"latency_p99_ms": 25.0, "throughput_rps": 10.0, "objective": "latency", "devices": {"cpu": {"count": 1}}}
    )
    exhaustive = _plan_on(grid, slo, known=grid)
    searched = _plan_on(grid, slo, known=stored)  # measuring off: it must stop where it stands
    assert searched.feasible and "stopped before convergence" in searched.search.method
    assert searched.pools[0].backend == exhaustive.pools[0].backend == "ort"
    (found,) = verify_plan(searched, grid, slo, OFFERS, 0.01)
    assert not found.broke and searched.expected.p99_ms >= found.p99_ms


def _metered(backend, batch, ms, replicas, threads, k):
    """A point whose energy is k J per busy core-second (cores = replicas x threads)."""
    seconds_per_sample = ms / 1000.0 / (batch * replicas)
    return point(
        backend,
        "bf16",
        batch,
        ms,
        threads=threads,
        replicas=replicas,
        joules=k * replicas * threads * seconds_per_sample,
    )


def test_energy_per_busy_core_second_is_carried_across_core_counts_by_what_other_families_show():
    """The cause of MiniLM's throughput-bound energy miss (+20% on the estimate of an unmeasured
    2-core layout): k (J per busy core-second) came from a family's 1-thread points and was used on
    2 cores, but a CPU's power is not proportional to its busy cores (an idle share is always drawn):
    on that machine every family gave ~7.5 on 1 core and ~6.2 on 2. k is now kept per cores, and a
    family not metered on 2 cores takes its 1-core k times the ratio the families metered on both show."""
    from hwfit.plan.configs import group_points

    search_module = importlib.import_module("hwfit.plan.search")
    groups = group_points(
        [
            _metered("torch", 8, 80.0, 1, 1, 7.5),
            _metered("torch", 8, 85.0, 2, 1, 6.2),
            _metered("torch", 8, 45.0, 1, 2, 6.2),
            _metered("torch-compile", 8, 70.0, 1, 1, 7.6),
        ]
    )
    families = {key.family.backend: key.family for key in groups}
    constants = search_module.EnergyConstants.from_groups(groups, {"cpu": 2})
    assert constants.k(families["torch"], 2.0) == pytest.approx(6.2)  # its own, where metered
    assert constants.k(families["torch-compile"], 1.0) == pytest.approx(7.6)
    assert constants.k(families["torch-compile"], 2.0) == pytest.approx(7.6 * 6.2 / 7.5)


def test_an_infeasible_slo_s_lowest_p99_is_not_reported_below_what_the_measurements_back():
    """The plan chooses, and answers an infeasible SLO, from the configurations evaluated on their
    measured points. Those read a curve as a line below its smallest measured batch: measured at 8 to
    64 only, batch 1 came out at 6.5 ms (it takes 9.5), and the plan said the lowest p99 reachable was
    below the grid's (on the CNN's grid, 0.407 ms where the grid's best is 0.446). Now each unmeasured
    batch takes the time of the next measured one above it, so the lowest p99 is one the points back."""
    plateau = {1: 9.5, 2: 9.6, 4: 9.8, 8: 10.0, 16: 14.0, 32: 22.0, 64: 38.0}
    grid = [point("openvino", "bf16", b, plateau[b]) for b in BATCHES]
    stored = [m for m in grid if m.variant["batch_size"] >= 8]
    slo = parse_slo(
        {"latency_p99_ms": 5.0, "throughput_rps": 10.0, "objective": "latency", "devices": {"cpu": {"count": 1}}}
    )
    exhaustive = _plan_on(grid, slo, known=grid)
    searched = _plan_on(grid, slo, known=stored)  # measuring off: it answers from what it has
    assert not exhaustive.feasible and not searched.feasible
    best = exhaustive.infeasible.nearest["latency_p99_ms"]
    assert searched.infeasible.nearest["latency_p99_ms"] >= best


def test_a_p99_resting_on_unmeasured_batch_sizes_says_it_is_an_upper_bound_and_which_they_are():
    """A configuration screened at batch 8 alone is rejected on a p99 that takes batch 1 as long as
    batch 8: the plan said "p99 205 ms (approximation) > 40 ms" as if measured. It now says the p99 is
    an upper bound and names the batch sizes not measured."""
    plateau = {1: 9.5, 2: 9.6, 4: 9.8, 8: 10.0, 16: 14.0, 32: 22.0, 64: 38.0}
    grid = [point("openvino", "bf16", b, plateau[b]) for b in BATCHES]
    stored = [m for m in grid if m.variant["batch_size"] in (8, 16)]
    slo = parse_slo(
        {"latency_p99_ms": 5.0, "throughput_rps": 10.0, "objective": "latency", "devices": {"cpu": {"count": 1}}}
    )
    searched = _plan_on(grid, slo, known=stored)
    (rejected,) = [c for c in searched.candidates if c.verdict == "rejected"]
    assert "an upper bound: batch 1, 2, 4 not measured" in rejected.why
    assert "an upper bound: batch 1, 2, 4 not measured" in searched.infeasible.message
    measured = _plan_on(grid, slo, known=grid)
    assert all("upper bound" not in c.why for c in measured.candidates)
