"""Plans for hand-made measurement sets with a known best answer."""

from __future__ import annotations

import math

import pytest

from hwfit.plan import DeviceOffer, Grid, ModelRef, PlanRequest, load_plan, make_plan, parse_slo
from tests.plan._points import curve_points, point

CPU = {"cpu": DeviceOffer("cpu", 1, 0.10, "test", cores=2)}


def _request(points, offers=CPU, default_loss=0.01, **kwargs) -> PlanRequest:
    grid = Grid.from_variants([m.as_variant() for m in points])
    return PlanRequest(
        model=ModelRef(name="m", source="m", hash="h"),
        grid=grid,
        known=points,
        offers=offers,
        default_accuracy_loss=default_loss,
        **kwargs,
    )


def _slo(**fields):
    base = {"latency_p99_ms": 100, "throughput_rps": 50, "objective": "latency", "devices": {"cpu": {"count": 1}}}
    return parse_slo({**base, **fields})


def three_families():
    return (
        curve_points("ort", "fp32", 2.0, 8.0)
        + curve_points("ort", "int8-dynamic", 1.5, 4.0, cosine=0.994)
        + curve_points("torch", "int8-dynamic", 1.0, 3.0, cosine=0.979)
    )


def test_latency_objective_picks_the_fastest_accurate_family_and_rejects_the_inaccurate_one():
    plan = make_plan(_request(three_families()), _slo(latency_p99_ms=30))
    assert plan.feasible
    primary = plan.pools[0]
    assert (primary.backend, primary.precision, primary.role) == ("ort", "int8-dynamic", "primary")
    torch_int8 = next(c for c in plan.candidates if c.config.startswith("torch/cpu/int8-dynamic"))
    assert torch_int8.verdict == "rejected" and torch_int8.broke == ["max_accuracy_loss"]
    assert "0.021" in torch_int8.why and "default tolerance" in torch_int8.why
    assert primary.expected.p99_ms <= 30 and "simulation" in primary.expected.how
    # the fallback is another family, standing by
    assert plan.pools[-1].role == "fallback" and plan.pools[-1].precision == "fp32"
    assert plan.fallback == [pool.name for pool in plan.pools]


def test_the_slo_accuracy_limit_overrides_the_default_tolerance():
    plan = make_plan(_request(three_families()), _slo(latency_p99_ms=30, max_accuracy_loss=0.05))
    assert (plan.pools[0].backend, plan.pools[0].precision) == ("torch", "int8-dynamic")


def test_cost_objective_takes_the_layout_with_fewer_cores_when_it_meets_the_slo():
    points = curve_points("ort", "fp32", 2.0, 5.0, threads=2) + curve_points("ort", "fp32", 3.0, 9.0, threads=1)
    plan = make_plan(_request(points), _slo(objective="cost", latency_p99_ms=200, throughput_rps=20))
    assert plan.pools[0].threads == 1
    # one core of two: half the device's hourly price, spread over 20 req/s
    hardware_per_million = 0.10 * 0.5 / (20 * 3600) * 1e6
    assert plan.expected.cost_per_million == pytest.approx(hardware_per_million, rel=1e-6)


def test_replica_capacity_comes_from_the_joint_measurement_not_k_times_one_replica():
    single = curve_points("ort", "int8-dynamic", 1.0, 4.0, threads=1)
    # two replicas measured together: each batch 30% slower than alone (shared caches, bandwidth)
    joint = curve_points("ort", "int8-dynamic", 1.3, 5.2, threads=1, replicas=2)
    plan = make_plan(_request(single + joint), _slo(objective="throughput", latency_p99_ms=500, throughput_rps=100))
    primary = plan.pools[0]
    assert primary.replicas_per_device == 2
    b = primary.max_batch_size
    joint_rate = 2 * b * 1000.0 / (1.3 + 5.2 * b)
    assert primary.expected.capacity_rps == pytest.approx(joint_rate, rel=1e-3)
    assert primary.expected.capacity_rps < 2 * b * 1000.0 / (1.0 + 4.0 * b)


def test_heterogeneous_plan_puts_the_bulk_on_the_gpu_and_the_overflow_on_the_cpu():
    gpu = curve_points("ort", "fp16", 5.0, 1.2, device="cuda:0", threads=None)  # ~737 req/s at b32
    cpu = curve_points("ort", "int8-dynamic", 1.5, 4.0, threads=2)  # ~245 req/s at b32
    offers = {"cpu": DeviceOffer("cpu", 1, 0.10, "test", cores=2), "cuda:0": DeviceOffer("cuda:0", 1, 2.50, "test")}
    slo = parse_slo(
        {
            "latency_p99_ms": 400,
            "throughput_rps": 600,
            "objective": "cost",
            "devices": {"cpu": {"count": 1}, "cuda:0": {"count": 1}},
        }
    )
    plan = make_plan(_request(gpu + cpu, offers=offers), slo)
    assert plan.feasible, plan.infeasible
    roles = {pool.role: pool.device for pool in plan.pools}
    assert roles["primary"] == "cuda:0" and roles["overflow"] == "cpu"
    primary, overflow = plan.pools[0], plan.pools[1]
    assert primary.expected.rate_rps + overflow.expected.rate_rps == pytest.approx(600)
    assert primary.expected.rate_rps <= primary.expected.capacity_rps * slo.headroom * (1 + 1e-4)
    assert plan.fallback[:2] == [primary.name, overflow.name]


def test_infeasible_latency_names_the_constraint_and_the_nearest_reachable_p99():
    plan = make_plan(_request(three_families()), _slo(latency_p99_ms=2, throughput_rps=20))
    assert not plan.feasible and plan.pools == []
    assert plan.infeasible.constraints == ["latency_p99_ms"]
    best = plan.infeasible.nearest["latency_p99_ms"]
    assert 5.5 <= best < 20  # at least one batch of 1 on the fastest accurate family
    assert "p99 <= 2 ms is not reachable" in plan.infeasible.message
    assert "ort/cpu/int8-dynamic" in plan.infeasible.message
    assert "No plan meets the SLO" in plan.answer


def test_a_reachable_rate_is_not_blamed_when_only_the_p99_is_out_of_reach():
    # ort fp32 carries 30 req/s (about 124 req/s at batch 32) but no batch is under 2 ms; the slow torch
    # fp32 (about 24 req/s) is overloaded at 30 req/s, and relaxing the rate would let it through only
    # because its p99 goes with it: the p99 is to blame, and the plan must not call 30 req/s unreachable
    points = curve_points("ort", "fp32", 2.0, 8.0) + curve_points("torch", "fp32", 50.0, 40.0)
    plan = make_plan(_request(points), _slo(latency_p99_ms=2, throughput_rps=30, objective="cost"))
    assert not plan.feasible
    assert plan.infeasible.constraints == ["latency_p99_ms"]
    assert "not reachable" in plan.infeasible.message and "req/s at" not in plan.infeasible.message
    assert set(plan.infeasible.nearest) == {"latency_p99_ms"}


def test_infeasible_throughput_gives_the_most_that_can_be_sustained():
    plan = make_plan(_request(three_families()), _slo(latency_p99_ms=1000, throughput_rps=5000))
    assert not plan.feasible
    assert "throughput_rps" in plan.infeasible.constraints
    sustainable = plan.infeasible.nearest["throughput_rps"]
    best_capacity = 32 * 1000.0 / (1.5 + 4.0 * 32)  # ort int8-dynamic at b32
    assert sustainable == pytest.approx(best_capacity * 0.7, rel=1e-3)


def test_throughput_takes_the_larger_batch_when_capacities_tie_within_a_percent():
    # per sample 14.58 ms at b1, 14.60 at b2 (a 0.1% difference, the noise of one measurement), then worse
    points = [
        point("ort", "int8-dynamic", 1, 14.58),
        point("ort", "int8-dynamic", 2, 29.2),
        point("ort", "int8-dynamic", 4, 62.0),
    ]
    plan = make_plan(_request(points), _slo(objective="throughput", latency_p99_ms=2000, throughput_rps=10))
    assert plan.pools[0].max_batch_size == 2
    points[1] = point("ort", "int8-dynamic", 2, 30.0)  # 2.8% less capacity: no longer a tie
    plan = make_plan(_request(points), _slo(objective="throughput", latency_p99_ms=2000, throughput_rps=10))
    assert plan.pools[0].max_batch_size == 1


def test_a_batch_that_ran_out_of_memory_rules_out_larger_ones():
    points = curve_points("ort", "fp32", 2.0, 1.0, batches=(1, 2, 4, 8))
    points.append(point("ort", "fp32", 16, 0, status="failed", reason="SIGKILL (out of memory?)"))
    points += [point("ort", "fp32", 32, 34.0)]  # a stale point from before: still ruled out
    plan = make_plan(_request(points), _slo(objective="throughput", latency_p99_ms=1000, throughput_rps=10))
    assert plan.pools[0].max_batch_size <= 8


def test_energy_objective_prefers_fewer_joules_among_feasible():
    points = curve_points("ort", "fp32", 2.0, 8.0, joules=0.5) + curve_points(
        "openvino", "bf16", 2.0, 6.0, joules=0.2, cosine=0.999
    )
    plan = make_plan(_request(points), _slo(objective="energy", latency_p99_ms=500, throughput_rps=30))
    assert plan.pools[0].backend == "openvino"
    assert plan.expected.j_per_inference == pytest.approx(0.2)
    assert plan.expected.energy_how == "estimated"


def test_energy_limit_rejects_and_is_reported_when_nothing_meets_it():
    points = curve_points("ort", "fp32", 2.0, 8.0, joules=0.5)
    plan = make_plan(_request(points), _slo(max_energy_j_per_inference=0.1))
    assert not plan.feasible
    assert plan.infeasible.constraints == ["max_energy_j_per_inference"]
    assert plan.infeasible.nearest["max_energy_j_per_inference"] == pytest.approx(0.5)


def test_plan_file_round_trips(tmp_path):
    plan = make_plan(_request(three_families()), _slo(latency_p99_ms=30))
    path = plan.save(tmp_path / "plan.yaml")
    again = load_plan(path)
    assert again.to_dict() == plan.to_dict()
    assert all(math.isfinite(c.p99_ms) for c in again.candidates if c.p99_ms is not None)


# The axes the planner's Pareto front compares (hwfit/plan/planner.py PARETO_AXES), written out
# here so the test is an independent check; a missing figure counts as the worst value.
FRONT_AXES = {
    "p99_ms": "min",
    "capacity_rps": "max",
    "accuracy_loss": "min",
    "j_per_inference": "min",
    "cost_per_million": "min",
}


def _lower_is_better(candidate, axis: str) -> float:
    value = getattr(candidate, axis)
    if value is None:
        return math.inf
    return value if FRONT_AXES[axis] == "min" else -value


def _dominates(a, b) -> bool:
    """a is at least as good as b on every axis and strictly better on one."""
    mine = [_lower_is_better(a, axis) for axis in FRONT_AXES]
    theirs = [_lower_is_better(b, axis) for axis in FRONT_AXES]
    pairs = list(zip(mine, theirs, strict=True))
    return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)


def test_every_candidate_on_the_front_is_not_dominated():
    # openvino fp32 is slower than ort fp32 at every batch with the same accuracy and cost: dominated
    points = three_families() + curve_points("openvino", "fp32", 3.0, 10.0)
    plan = make_plan(_request(points), _slo(latency_p99_ms=30))
    front = [c for c in plan.candidates if c.on_front]
    off_front = [c for c in plan.candidates if not c.on_front]
    assert any(c.verdict == "chosen" for c in plan.candidates)
    assert [c.config.split()[0] for c in off_front] == ["openvino/cpu/fp32"]
    assert len(front) == 3
    for candidate in front:
        beaters = [other.config for other in plan.candidates if _dominates(other, candidate)]
        assert not beaters, f"{candidate.config} is on the front, but {beaters} dominate it"
    for candidate in off_front:  # off the front means some front member beats it on every axis
        assert any(_dominates(member, candidate) for member in front), f"{candidate.config}: off the front, undominated"
