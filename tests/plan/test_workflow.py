"""The planning workflow (`plan_deployment`): offers and their prices, the naive baseline (stored or
measured), and the plan, over a source of hand-made measurements."""

from __future__ import annotations

import pytest

from hwfit.core import HwfitError, usable_threads
from hwfit.hardware import device_names, discover_gpus, gpu_for_cuda_index, load_catalog, spec_for_gpu
from hwfit.plan import (
    Grid,
    ModelRef,
    PlanRequest,
    device_offers,
    make_plan,
    parse_slo,
    plan_deployment,
    planned_devices,
)
from tests.plan._points import curve_points

MODEL = ModelRef(name="m", source="m", hash="h")
BASELINE_KEY = f"torch/cpu/fp32/b1/t{usable_threads()}"


class PointsAtHand:
    """A measurement source over hand-made points: `stored` are already in the store; `measure`
    answers from `stored` and `measurable` and notes what it was asked, as a point session would,
    and names the run it measures in (run 2) next to the stored points' run (run 1)."""

    def __init__(self, stored, measurable=(), devices=("cpu",)):
        every = [*stored, *measurable]
        self.devices = list(devices)
        self.variants = [m.as_variant() for m in every]
        self.stored_points = list(stored)
        self.run_ids = [1]
        self.by_key = {m.variant_key: m for m in every}
        self.asked: list[list[str]] = []

    def measure(self, variants):
        self.asked.append([v.key for v in variants])
        if 2 not in self.run_ids:
            self.run_ids.append(2)
        return [self.by_key[v.key] for v in variants]


def _ort():
    return curve_points("ort", "fp32", 2.0, 8.0, threads=1) + curve_points(
        "ort", "int8-dynamic", 1.5, 4.0, threads=1, cosine=0.994
    )


def _torch(status="ok"):
    return curve_points("torch", "fp32", 3.0, 9.0, threads=usable_threads(), status=status)


def _slo(**fields):
    base = {
        "latency_p99_ms": 100,
        "throughput_rps": 50,
        "objective": "cost",
        "devices": {"cpu": {"count": 1, "price_per_hour": 0.10}},
    }
    return parse_slo({**base, **fields})


def test_the_stored_baseline_is_used_without_measuring_it():
    source = PointsAtHand(_ort() + _torch())
    plan = plan_deployment(MODEL, _slo(), source, default_accuracy_loss=0.01)
    baseline = next(m for m in source.stored_points if m.variant_key == BASELINE_KEY)
    assert plan.feasible and (plan.pools[0].backend, plan.pools[0].precision) == ("ort", "int8-dynamic")
    assert f"naive baseline, PyTorch eager fp32 at batch 1 ({baseline.samples_per_s:.3g} req/s" in plan.answer
    assert source.asked == []  # every grid point was stored: nothing measured, the baseline included
    assert plan.search.run_ids == [1]


def test_a_missing_baseline_is_measured_first_and_its_run_joins_the_plan():
    source = PointsAtHand(_ort(), measurable=_torch())
    plan = plan_deployment(MODEL, _slo(), source, default_accuracy_loss=0.01)
    assert source.asked[0] == [BASELINE_KEY]
    baseline = source.by_key[BASELINE_KEY]
    assert f"({baseline.samples_per_s:.3g} req/s measured on the same machine)" in plan.answer
    assert plan.search.run_ids == [1, 2]


def test_a_run_opened_by_the_search_joins_the_plan():
    ort_int8 = curve_points("ort", "int8-dynamic", 1.5, 4.0, threads=1, cosine=0.994)
    source = PointsAtHand(curve_points("ort", "fp32", 2.0, 8.0, threads=1) + _torch(), measurable=ort_int8)
    plan = plan_deployment(MODEL, _slo(), source, default_accuracy_loss=0.01)
    assert source.asked and all(key.startswith("ort/cpu/int8-dynamic") for keys in source.asked for key in keys)
    assert plan.search.measured == len(sum(source.asked, [])) and plan.search.run_ids == [1, 2]


def test_a_baseline_that_failed_to_measure_is_left_out():
    source = PointsAtHand(_ort(), measurable=_torch(status="failed"))
    plan = plan_deployment(MODEL, _slo(), source, default_accuracy_loss=0.01)
    assert source.asked[0] == [BASELINE_KEY]
    assert plan.feasible and "naive baseline" not in plan.answer


def test_without_measuring_there_is_no_baseline_and_the_plan_is_the_planners_own():
    source = PointsAtHand(_ort() + _torch())
    slo = _slo()
    plan = plan_deployment(MODEL, slo, source, measure=False, budget=3, default_accuracy_loss=0.01)
    assert source.asked == [] and "naive baseline" not in plan.answer
    direct = make_plan(
        PlanRequest(
            model=MODEL,
            grid=Grid.from_variants(source.variants),
            known=source.stored_points,
            offers=device_offers(slo),
            budget=3,
            default_accuracy_loss=0.01,
            run_ids=[1],
        ),
        slo,
    )
    made, expected = plan.to_dict(), direct.to_dict()
    made.pop("created_at"), expected.pop("created_at")  # a second apart at worst
    assert made == expected


def test_no_cpu_here_means_no_baseline():
    source = PointsAtHand(_ort() + _torch(), devices=())
    plan = plan_deployment(MODEL, _slo(), source, default_accuracy_loss=0.01)
    assert source.asked == [] and "naive baseline" not in plan.answer


def test_the_budget_announced_is_the_search_budget_and_the_baseline():
    heard = []
    source = PointsAtHand(_ort() + _torch())
    plan_deployment(MODEL, _slo(), source, budget=3, on_planned=heard.append)
    grid_size = Grid.from_variants(source.variants).size
    plan_deployment(MODEL, _slo(), source, on_planned=heard.append)
    assert heard == [4, -(-grid_size // 10) + 1]


def test_offers_take_the_slo_price_else_the_catalogs_price_per_core():
    source = PointsAtHand(_ort() + _torch())
    priced = plan_deployment(MODEL, _slo(), source, measure=False)
    assert "cpu: the SLO file" in " ".join(priced.assumptions)
    catalog = load_catalog().cpu_price
    offer = device_offers(_slo(devices={"cpu": {"count": 1}}))["cpu"]
    assert offer.price_per_hour == pytest.approx(catalog.value * usable_threads())
    assert offer.price_how.startswith(f"catalog, {catalog.value:g} USD/core-hour x {usable_threads()} cores")
    assert offer.cores == usable_threads()
    from_catalog = plan_deployment(MODEL, _slo(devices={"cpu": {"count": 1}}), source, measure=False)
    assert offer.price_how in " ".join(from_catalog.assumptions)
    # the same plan costs what its share of the cores costs at each price
    ratio = offer.price_per_hour / 0.10
    assert from_catalog.pools[0].variant == priced.pools[0].variant
    assert from_catalog.expected.cost_per_million == pytest.approx(priced.expected.cost_per_million * ratio, rel=1e-3)


def test_a_cost_slo_on_an_unpriced_device_is_refused_before_anything_is_measured():
    source = PointsAtHand(_ort(), measurable=_torch())
    slo = _slo(devices={"cpu": {"count": 1, "price_per_hour": 0.1}, "cuda:7": {"count": 1}})
    with pytest.raises(HwfitError, match=r"cuda:7 has no price: add `price_per_hour` under devices\.cuda:7"):
        plan_deployment(MODEL, slo, source)
    assert source.asked == []


@pytest.mark.gpu
def test_a_catalogued_gpu_is_priced_from_the_catalog():
    gpus, reason = discover_gpus()
    gpu = gpu_for_cuda_index(0, gpus)
    spec = spec_for_gpu(gpu.name) if gpu is not None else None
    if spec is None or spec.price is None:
        pytest.skip(f"cuda:0 ({gpu.name if gpu else reason}) has no price in the catalog")
    offer = device_offers(_slo(devices={"cuda:0": {"count": 1}}))["cuda:0"]
    assert offer.price_per_hour == spec.price.value and offer.price_how.startswith("catalog (")


def test_an_slo_without_devices_plans_for_this_machines_devices_and_says_so():
    slo = parse_slo({"latency_p99_ms": 100, "throughput_rps": 50, "objective": "cost"})
    here = device_names()
    assert planned_devices(slo) == here and here[0] == "cpu"
    offers = device_offers(slo)
    assert list(offers) == here and offers["cpu"].price_how.startswith("catalog, ")
    plan = plan_deployment(MODEL, slo, PointsAtHand(_ort() + _torch()), measure=False)
    assert plan.feasible and list(plan.slo.devices) == here  # the plan records what it planned for
    note = plan.assumptions[0]
    assert note.startswith("The SLO lists no devices: planned for this machine's, as `hwfit devices` lists them")
    assert f"({', '.join(here)})" in note and f"cpu: {offers['cpu'].price_per_hour:.4g} USD/h" in note
    assert plan.answer.endswith(note)
    named = plan_deployment(MODEL, _slo(), PointsAtHand(_ort() + _torch()), measure=False)
    assert "lists no devices" not in named.answer and not any("lists no devices" in a for a in named.assumptions)
