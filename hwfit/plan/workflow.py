"""The planning workflow, from a model, an SLO and a source of measurements to a `Plan`: the devices
offered and their prices, the grid, the naive baseline, then the planner.

The source is whatever can list the grid, hand over stored points and measure more — the profiler's
planning session on a real machine; plan never imports the profiler (see `MeasurementSource`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from hwfit.core import Device, HwfitError, Variant, is_gpu, is_usable, usable_threads
from hwfit.hardware import device_names, discover_gpus, gpu_for_cuda_index, load_catalog, spec_for_gpu
from hwfit.plan.evaluate import DeviceOffer
from hwfit.plan.planner import PlanRequest, make_plan
from hwfit.plan.schema import ModelRef, Plan
from hwfit.plan.search import Grid, Measure
from hwfit.plan.slo import Slo
from hwfit.store import Measurement


class MeasurementSource(Protocol):
    """The measurement side of planning one model on one machine (`hwfit.profile.PlanningSession`)."""

    @property
    def devices(self) -> list[str]:
        """The devices asked for that are present on this machine."""

    @property
    def variants(self) -> list[Variant]:
        """The grid: every point that could serve the model on those devices."""

    @property
    def stored_points(self) -> list[Measurement]:
        """Points of the grid already measured on this machine."""

    @property
    def run_ids(self) -> list[int]:
        """The runs the points come from; a run opened by `measure` joins the list (read after planning)."""

    def measure(self, variants: list[Variant]) -> list[Measurement]:
        """Measure these points now, recording them."""


def plan_deployment(
    model: ModelRef,
    slo: Slo,
    source: MeasurementSource,
    *,
    budget: int | None = None,
    measure: bool = True,
    default_accuracy_loss: float | None = None,
    on_round: Callable[[str], None] | None = None,
    on_planned: Callable[[int], None] | None = None,
) -> Plan:
    """The plan for `model` under `slo`: from the source's stored points, measuring through it (at most
    `budget` points, else 10% of the grid) unless `measure` is False. `on_planned` hears once how many
    points may be measured (the search's budget and the baseline); `on_round` each round's news.

    An SLO that lists no devices is planned for this machine's (`planned_devices`), and the plan says so."""
    named = slo.names_devices
    slo = slo.with_devices(planned_devices(slo))
    offers = device_offers(slo)
    grid = Grid.from_variants(source.variants)
    known = source.stored_points
    if on_planned is not None:
        on_planned(_most_points(grid, budget) + 1)
    baseline = None
    if measure and "cpu" in source.devices:
        baseline = choose_baseline(known, source.measure)
    request = PlanRequest(
        model=model,
        grid=grid,
        known=known,
        offers=offers,
        measure=source.measure if measure else None,
        budget=budget,
        default_accuracy_loss=default_accuracy_loss,
        baseline=baseline,
        run_ids=source.run_ids,
        on_round=on_round,
    )
    plan = make_plan(request, slo)
    if not named:
        note = machine_devices_note(offers)
        plan.assumptions.insert(0, note)
        plan.answer = f"{plan.answer} {note}"
    return plan


def planned_devices(slo: Slo) -> list[str]:
    """The devices a plan for `slo` may use: those its file lists, else this machine's, as `hwfit devices`
    lists them (the CPU and each CUDA device, after CUDA_VISIBLE_DEVICES), one of each."""
    if slo.devices is not None:
        return list(slo.devices)
    return device_names()


def machine_devices_note(offers: dict[str, DeviceOffer]) -> str:
    """What a plan says when its SLO named no devices: which were taken and how each was priced."""
    priced = "; ".join(
        f"{offer.name}: {'unpriced' if offer.price_per_hour is None else f'{offer.price_per_hour:.4g} USD/h'} "
        f"({offer.price_how})"
        for offer in offers.values()
    )
    return (
        f"The SLO lists no devices: planned for this machine's, as `hwfit devices` lists them, one of each "
        f"({', '.join(offers)}); prices: {priced}. Add `devices:` to the SLO file to plan for other machines "
        "or other prices."
    )


def _most_points(grid: Grid, budget: int | None) -> int:
    return budget if budget is not None else max(1, -(-grid.size // 10))


def choose_baseline(known: list[Measurement], measure: Measure) -> Measurement | None:
    """The naive baseline — PyTorch eager fp32, batch 1, one process on every core — from the stored
    points, else measured; None when it could not be measured."""
    baseline = Variant("torch", "cpu", "fp32", 1, usable_threads())
    for measurement in known:
        if measurement.variant_key == baseline.key:
            return measurement
    found = measure([baseline])
    return found[0] if found and is_usable(found[0].status) else None


def device_offers(slo: Slo) -> dict[str, DeviceOffer]:
    """Each device the SLO allows, with its count, hourly price (the SLO's, else the catalog's) and cores."""
    catalog = load_catalog()
    offers = {}
    named = slo.names_devices
    slo = slo.with_devices(planned_devices(slo))
    for name, allowance in (slo.devices or {}).items():
        cores = usable_threads() if name == "cpu" else None
        price, how = allowance.price_per_hour, "the SLO file"
        if price is None and name == "cpu" and catalog.cpu_price is not None:
            price = catalog.cpu_price.value * cores
            how = (
                f"catalog, {catalog.cpu_price.value:g} USD/core-hour x {cores} cores "
                f"({catalog.cpu_price.how}: {catalog.cpu_price.source})"
            )
        elif price is None and is_gpu(name):
            spec = _gpu_spec(name)
            if spec is not None and spec.price is not None:
                price, how = spec.price.value, f"catalog ({spec.price.how}: {spec.price.source})"
        if price is None:
            how = "unknown: set price_per_hour in the SLO file"
        offers[name] = DeviceOffer(name, allowance.count, price, how, cores)
    if slo.objective == "cost" or slo.max_cost_per_million is not None:
        unpriced = [name for name, offer in offers.items() if offer.price_per_hour is None]
        if unpriced and not named:
            raise HwfitError(
                f"the SLO is about cost but this machine's {unpriced[0]} has no price in the catalog: add "
                f"`devices: {{{unpriced[0]}: {{count: 1, price_per_hour: USD}}}}` to the SLO file"
            )
        if unpriced:
            raise HwfitError(
                f"the SLO is about cost but {', '.join(unpriced)} has no price: add "
                f"`price_per_hour` under devices.{unpriced[0]} in the SLO file"
            )
    return offers


def _gpu_spec(name: str):
    """The catalog entry of the GPU behind CUDA device `name` (cuda:N), if there is one here."""
    gpus, _ = discover_gpus()
    gpu = gpu_for_cuda_index(Device.parse(name).index, gpus)
    return spec_for_gpu(gpu.name) if gpu is not None else None
