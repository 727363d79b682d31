"""Pareto frontier on hand-made point sets whose front is known."""

from dataclasses import dataclass

import pytest

from hwfit.plan import ParetoError, pareto_front, pareto_split


def test_two_objectives_known_front():
    points = [
        {"name": "a", "p99_ms": 10, "cost": 5},  # front: fastest
        {"name": "b", "p99_ms": 20, "cost": 2},  # front: cheapest
        {"name": "c", "p99_ms": 15, "cost": 3},  # front: in between
        {"name": "d", "p99_ms": 20, "cost": 3},  # dominated by b (same p99, dearer) and c
        {"name": "e", "p99_ms": 30, "cost": 6},  # dominated by all
    ]
    front = pareto_front(points, {"p99_ms": "min", "cost": "min"})
    assert [p["name"] for p in front] == ["a", "b", "c"]
    split = pareto_split(points, {"p99_ms": "min", "cost": "min"})
    assert split.front == [0, 1, 2]
    assert split.dominated_by[3] in (1, 2) and split.dominated_by[4] in (0, 1, 2)


def test_maximize_flips_the_direction():
    points = [{"rps": 100, "j": 1.0}, {"rps": 200, "j": 1.0}, {"rps": 50, "j": 0.5}]
    assert pareto_split(points, {"rps": "max", "j": "min"}).front == [1, 2]
    assert pareto_split(points, {"rps": "min", "j": "min"}).front == [2]


def test_equal_points_both_stay_and_single_objective_keeps_all_ties():
    points = [{"x": 1, "y": 1}, {"x": 1, "y": 1}, {"x": 2, "y": 2}]
    assert pareto_split(points, {"x": "min", "y": "min"}).front == [0, 1]
    assert pareto_split([{"x": 3}, {"x": 1}, {"x": 1}], {"x": "min"}).front == [1, 2]


def test_three_objectives_and_objects_with_attributes():
    @dataclass
    class Option:
        p99_ms: float
        cost: float
        energy_j: float

    options = [Option(10, 5, 1), Option(10, 5, 2), Option(12, 4, 3), Option(12, 6, 3)]
    front = pareto_front(options, {"p99_ms": "min", "cost": "min", "energy_j": "min"})
    assert front == [options[0], options[2]]


def test_empty_input():
    assert pareto_front([], {"x": "min"}) == []


@pytest.mark.parametrize(
    "points,objectives,named",
    [
        ([{"x": 1}], {"x": "smallest"}, "'x'"),
        ([{"x": 1}], {}, "objective"),
        ([{"x": 1}, {"y": 2}], {"x": "min"}, "point 1"),
        ([{"x": "fast"}], {"x": "min"}, "'fast'"),
        ([{"x": float("nan")}], {"x": "min"}, "nan"),
    ],
)
def test_bad_input_is_named(points, objectives, named):
    with pytest.raises(ParetoError) as caught:
        pareto_front(points, objectives)
    assert named in str(caught.value)
