"""The planner: from measurements and an SLO to a `Plan` — pools, fallback, explanation.

`make_plan` runs the measure-few search (`search.py`), then considers heterogeneous pools (a
primary pool on one device and an overflow pool on another, when together they beat every single
pool or are the only way to carry the load), picks a fallback pool on another device or backend,
and explains the choice: the Pareto frontier over the objective and every constraint, and for
each rejected configuration the constraint it broke. An infeasible SLO gets the constraints no
configuration meets and the nearest targets that can be met.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from hwfit.core import OBJECTIVE_METRICS, Config, direction, to_minimise, worst
from hwfit.plan.configs import family_accuracy
from hwfit.plan.evaluate import DeviceOffer, Evaluation, confirm, evaluate, relaxed
from hwfit.plan.evaluate import culprits as find_culprits
from hwfit.plan.pareto import pareto_split
from hwfit.plan.schema import (
    Candidate,
    Expected,
    Infeasibility,
    ModelRef,
    Plan,
    PoolPlan,
    SearchStats,
)
from hwfit.plan.search import Grid, Measure, SearchOutcome, measured_config_data, search
from hwfit.plan.slo import Slo
from hwfit.store import Measurement

PARETO_AXES = {
    axis: direction(axis) for axis in ("p99_ms", "capacity_rps", "accuracy_loss", "j_per_inference", "cost_per_million")
}
HETEROGENEOUS_TOP = 6  # per device, the configurations paired up as primary/overflow


@dataclass
class Choice:
    """One or two pools serving the SLO's rate together, with the combined figures."""

    pools: list[tuple[str, Evaluation]]  # (role, evaluation at its share of the rate)

    @property
    def primary(self) -> Evaluation:
        return self.pools[0][1]

    @property
    def broke(self) -> dict[str, str]:
        merged: dict[str, str] = {}
        for role, evaluation in self.pools:
            for name, why in evaluation.broke.items():
                merged.setdefault(name, why if len(self.pools) == 1 else f"{role} pool: {why}")
        return merged

    @property
    def p99_ms(self) -> float:
        return max(e.p99_ms for _, e in self.pools)

    @property
    def capacity_rps(self) -> float:
        return sum(e.capacity_rps for _, e in self.pools)

    @property
    def rate_rps(self) -> float:
        return sum(e.rate_rps for _, e in self.pools)

    @property
    def j_per_inference(self) -> float | None:
        return _weighted(self.pools, "j_per_inference")

    @property
    def cost_per_million(self) -> float | None:
        hourly = [e.cost_per_hour for _, e in self.pools]
        if any(h is None for h in hourly) or not self.rate_rps:
            return None
        energy = [
            (e.cost_per_million or 0.0) - e.cost_per_hour / (e.rate_rps * 3600.0) * 1e6 if e.rate_rps else 0.0
            for _, e in self.pools
        ]
        return (
            sum(hourly) / (self.rate_rps * 3600.0) * 1e6
            + sum(part * e.rate_rps for part, (_, e) in zip(energy, self.pools)) / self.rate_rps
        )

    @property
    def accuracy_loss(self) -> float | None:
        losses = [e.accuracy_loss for _, e in self.pools if e.accuracy_loss is not None]
        return max(losses) if losses else None

    def objective_value(self, objective: str) -> float:
        metric = OBJECTIVE_METRICS[objective]
        return to_minimise(metric, getattr(self, metric))

    def rank(self, objective: str) -> tuple:
        cost = self.cost_per_million if self.cost_per_million is not None else math.inf
        return (len(self.broke), self.objective_value(objective), cost, self.p99_ms, len(self.pools))


def _weighted(pools, attribute: str) -> float | None:
    values = [(getattr(e, attribute), e.rate_rps) for _, e in pools]
    if any(v is None for v, _ in values):
        return None
    total = sum(rate for _, rate in values)
    return sum(v * rate for v, rate in values) / total if total else values[0][0]


@dataclass
class PlanRequest:
    """Everything `make_plan` needs besides the SLO (the CLI builds it from the store and hardware)."""

    model: ModelRef
    grid: Grid
    known: list[Measurement]
    offers: dict[str, DeviceOffer]
    measure: Measure | None = None
    budget: int | None = None
    default_accuracy_loss: float | None = None
    baseline: Measurement | None = None  # the naive baseline: PyTorch eager fp32 at batch 1
    run_ids: list[int] = field(default_factory=list)
    on_round: Callable[[str], None] | None = None


def make_plan(request: PlanRequest, slo: Slo) -> Plan:
    outcome = search(
        request.grid,
        request.known,
        slo,
        request.offers,
        request.measure,
        request.budget,
        request.default_accuracy_loss,
        request.on_round,
    )
    singles = _best_per_config(outcome.evaluations, slo)
    choices = [Choice([("primary", e)]) for e in singles]
    choices += _heterogeneous(outcome, singles, slo, request)
    chosen = min(choices, key=lambda c: c.rank(slo.objective)) if choices else None
    if chosen is not None and outcome.best is not None and outcome.best.feasible:
        single = Choice([("primary", outcome.best)])
        if single.rank(slo.objective) <= chosen.rank(slo.objective):
            chosen = single
    feasible = chosen is not None and not chosen.broke
    pools = _pools(chosen, outcome) if feasible else []
    fallback_pool = _fallback(chosen, singles, outcome, slo) if feasible else None
    if fallback_pool is not None:
        pools.append(fallback_pool)
    plan = Plan(
        model=request.model,
        slo=slo,
        feasible=feasible,
        pools=pools,
        fallback=[pool.name for pool in pools],
        expected=_expected_total(chosen, slo) if feasible else None,
        assumptions=_assumptions(slo, request, outcome),
        candidates=_candidates(singles, chosen if feasible else None, slo),
        infeasible=None if feasible else _infeasibility(singles, slo, request.default_accuracy_loss),
        search=SearchStats(
            grid_size=outcome.grid_size,
            measured=len(outcome.measured),
            reused=len({m.variant_key for m in request.known}),
            run_ids=sorted(set(request.run_ids)),
            method=f"optimistic bounds, measure where the best estimate lies ({outcome.note})",
        ),
    )
    plan.answer = _answer(plan, chosen if feasible else None, request.baseline, slo)
    return plan


# --- choosing ---------------------------------------------------------------------------------


def _best_per_config(evaluations: list[Evaluation], slo: Slo) -> list[Evaluation]:
    """The best units option of every configuration (the search evaluated several)."""
    best: dict[Config, Evaluation] = {}
    for evaluation in evaluations:
        current = best.get(evaluation.key)
        if current is None or evaluation.rank(slo.objective) < current.rank(slo.objective):
            best[evaluation.key] = evaluation
    return sorted(best.values(), key=lambda e: e.rank(slo.objective))


def _heterogeneous(outcome: SearchOutcome, singles: list[Evaluation], slo: Slo, request: PlanRequest) -> list[Choice]:
    """Primary on one device up to its headroom, overflow on another device for the rest."""
    devices = sorted({e.key.family.device for e in singles})
    if len(devices) < 2:
        return []
    accuracy = family_accuracy(outcome.groups)
    choices = []
    for primary in _pairable(singles, slo):
        share = min(slo.throughput_rps, primary.capacity_rps * slo.headroom)
        rest = slo.throughput_rps - share
        if rest <= 1e-9:
            continue
        primary_part = _at_rate(outcome, primary, share, slo, request, accuracy)
        for overflow_key in [
            e.key for e in _pairable(singles, slo) if e.key.family.device != primary.key.family.device
        ]:
            data = _measured(outcome, overflow_key, accuracy, request)
            offer = request.offers[overflow_key.family.device]
            for overflow in evaluate(data, slo, offer, request.default_accuracy_loss, rate_rps=rest):
                choices.append(Choice([("primary", primary_part), ("overflow", overflow)]))
    feasible = [c for c in choices if not c.broke]
    feasible.sort(key=lambda c: c.rank(slo.objective))
    confirmed = []
    for choice in feasible[:3]:  # simulate the few that can win
        parts = []
        for role, evaluation in choice.pools:
            parts.append(
                (
                    role,
                    confirm(
                        evaluation,
                        _measured(outcome, evaluation.key, accuracy, request),
                        slo,
                        request.default_accuracy_loss,
                    ),
                )
            )
        confirmed.append(Choice(parts))
    return confirmed


def _pairable(singles: list[Evaluation], slo: Slo) -> list[Evaluation]:
    """Per device, the configurations worth pairing: accurate enough, cheapest per unit of capacity first."""
    by_device: dict[str, list[Evaluation]] = {}
    for evaluation in singles:
        if "max_accuracy_loss" in evaluation.broke or not evaluation.capacity_rps:
            continue
        by_device.setdefault(evaluation.key.family.device, []).append(evaluation)
    picked = []
    for rows in by_device.values():
        rows.sort(key=lambda e: ((e.cost_per_hour or 0.0) / e.capacity_rps, e.p99_ms))
        picked += rows[:HETEROGENEOUS_TOP]
    return picked


def _measured(outcome: SearchOutcome, key: Config, accuracy, request: PlanRequest):
    return measured_config_data(outcome.groups[key], accuracy, outcome.groups, request.offers)


def _at_rate(outcome, evaluation: Evaluation, rate: float, slo: Slo, request: PlanRequest, accuracy) -> Evaluation:
    data = _measured(outcome, evaluation.key, accuracy, request)
    offer = request.offers[evaluation.key.family.device]
    options = evaluate(data, slo, offer, request.default_accuracy_loss, rate_rps=rate)
    same = [e for e in options if e.units == evaluation.units]
    return same[0] if same else min(options, key=lambda e: e.rank(slo.objective))


def _fallback(chosen: Choice, singles: list[Evaluation], outcome: SearchOutcome, slo: Slo) -> PoolPlan | None:
    """A standby pool for when the plan's pools fail: another device if there is one, else another
    backend or precision; the one that would serve best, among the accurate enough."""
    used_devices = {e.key.family.device for _, e in chosen.pools}
    used_families = {e.key.family for _, e in chosen.pools}
    options = [e for e in singles if e.key.family not in used_families and "max_accuracy_loss" not in e.broke]
    if not options:
        return None
    options.sort(key=lambda e: (e.key.family.device in used_devices, len(e.broke), e.rank(slo.objective)))
    pick = options[0]
    return _pool(pick, "fallback", outcome, standby=True)


# --- the plan's parts -------------------------------------------------------------------------


def _pools(chosen: Choice, outcome: SearchOutcome) -> list[PoolPlan]:
    return [_pool(evaluation, role, outcome) for role, evaluation in chosen.pools]


def _pool(evaluation: Evaluation, role: str, outcome: SearchOutcome, standby: bool = False) -> PoolPlan:
    key = evaluation.key
    group = outcome.groups[key]
    replica = key.variant(evaluation.max_batch).without_replicas()
    how = (
        f"{evaluation.p99_how} of the dynamic batcher at {evaluation.rate_rps:.4g} req/s (Poisson), on measured "
        "service times plus measured jitter"
    ) + (f"; {evaluation.p99_bound_note}" if evaluation.p99_bounded else "")
    if standby:
        how = "standby: carries traffic only when the pools before it in the fallback chain fail"
    return PoolPlan(
        name=_pool_name(evaluation, role),
        role=role,
        variant=replica.key,
        backend=key.family.backend,
        device=key.family.device,
        precision=key.family.precision,
        threads=key.layout.threads,
        knobs=dict(replica.knobs),
        devices=evaluation.units,
        replicas_per_device=key.layout.replicas,
        max_batch_size=evaluation.max_batch,
        max_queue_delay_ms=evaluation.max_queue_delay_ms,
        service_ms={int(b): round(ms, 4) for b, ms in group.service_ms().items()},
        expected=Expected(
            rate_rps=0.0 if standby else evaluation.rate_rps,
            p50_ms=None if standby else _round(evaluation.p50_ms),
            p99_ms=None if standby else _round(evaluation.p99_ms),
            capacity_rps=round(evaluation.capacity_rps, 3),
            utilization=None if standby else round(evaluation.utilization, 4),
            j_per_inference=evaluation.j_per_inference,
            energy_how=evaluation.energy_how,
            cost_per_million=None if standby else evaluation.cost_per_million,
            accuracy_loss=evaluation.accuracy_loss,
            how=how,
        ),
        measured_from=list(evaluation.measured_from),
    )


def _pool_name(evaluation: Evaluation, role: str) -> str:
    family = evaluation.key.family
    raw = f"{role}-{family.device}-{family.backend}-{family.precision}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", raw)


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def _expected_total(chosen: Choice, slo: Slo) -> Expected:
    return Expected(
        rate_rps=slo.throughput_rps,
        p50_ms=_round(max((e.p50_ms or 0.0) for _, e in chosen.pools)),
        p99_ms=_round(chosen.p99_ms),
        capacity_rps=round(chosen.capacity_rps, 3),
        utilization=round(slo.throughput_rps / chosen.capacity_rps, 4) if chosen.capacity_rps else None,
        j_per_inference=chosen.j_per_inference,
        energy_how="/".join(sorted({e.energy_how for _, e in chosen.pools if e.energy_how})) or None,
        cost_per_million=chosen.cost_per_million,
        accuracy_loss=chosen.accuracy_loss,
        how="the worst p99 of its pools; capacity, energy and cost summed or weighted by each pool's share",
    )


def _candidates(singles: list[Evaluation], chosen: Choice | None, slo: Slo) -> list[Candidate]:
    chosen_keys = {e.key for _, e in chosen.pools} if chosen else set()
    values = [{axis: _axis_value(e, axis) for axis in PARETO_AXES} for e in singles]
    split = pareto_split(values, PARETO_AXES) if values else None
    rows = []
    for index, evaluation in enumerate(singles):
        if evaluation.key in chosen_keys:
            verdict, why = "chosen", "best on the objective among those meeting every constraint"
        elif evaluation.broke:
            verdict, why = "rejected", "; ".join(evaluation.broke.values())
        else:
            verdict, why = "feasible", _worse_than(evaluation, chosen, slo)
        rows.append(
            Candidate(
                config=evaluation.key.label,
                device=evaluation.key.family.device,
                devices=evaluation.units,
                replicas_per_device=evaluation.key.layout.replicas,
                max_batch_size=evaluation.max_batch,
                max_queue_delay_ms=evaluation.max_queue_delay_ms,
                p99_ms=_round(evaluation.p99_ms),
                capacity_rps=round(evaluation.capacity_rps, 3),
                accuracy_loss=evaluation.accuracy_loss,
                j_per_inference=evaluation.j_per_inference,
                cost_per_million=evaluation.cost_per_million,
                objective_value=_round(evaluation.objective_value(slo.objective), 6),
                verdict=verdict,
                broke=list(evaluation.broke),
                why=why,
                on_front=bool(split and index in split.front),
            )
        )
    return rows


def _axis_value(evaluation: Evaluation, axis: str) -> float:
    value = getattr(evaluation, axis)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return worst(axis)
    return float(value)


def _worse_than(evaluation: Evaluation, chosen: Choice | None, slo: Slo) -> str:
    if chosen is None:
        return "meets every constraint"
    mine, theirs = evaluation.objective_value(slo.objective), chosen.objective_value(slo.objective)
    name = {"cost": "$/million", "energy": "J/inference", "latency": "p99 ms", "throughput": "capacity req/s"}[
        slo.objective
    ]
    if slo.objective == "throughput":
        mine, theirs = -mine, -theirs
    return f"meets every constraint, but {name} {mine:.4g} vs {theirs:.4g} for the chosen plan"


# --- infeasible SLOs ----------------------------------------------------------------------------

_NEAREST = {
    "latency_p99_ms": (
        "p99_ms",
        min,
        "p99 <= {target:g} ms is not reachable at {rate:g} req/s; the best is {value:.3g} ms on {on}",
    ),
    "throughput_rps": (
        "sustainable",
        max,
        "{target:g} req/s at {headroom:.0%} busy is not reachable; the most is {value:.4g} req/s on {on}",
    ),
    "peak_rps": (
        "capacity_rps",
        max,
        "a peak of {target:g} req/s is not reachable; the most is {value:.4g} req/s on {on}",
    ),
    "max_accuracy_loss": (
        "accuracy_loss",
        min,
        "accuracy loss <= {target:g} is not reachable; the least is {value:.4g} on {on}",
    ),
    "max_energy_j_per_inference": (
        "j_per_inference",
        min,
        "<= {target:g} J/inference is not reachable; the least is {value:.3g} J on {on}",
    ),
    "max_cost_per_million": (
        "cost_per_million",
        min,
        "<= ${target:g}/million is not reachable; the least is ${value:.3g} on {on}",
    ),
}


def _infeasibility(singles: list[Evaluation], slo: Slo, default_loss: float | None) -> Infeasibility:
    if not singles:
        return Infeasibility(
            constraints=[],
            message="nothing could be measured on the devices the SLO allows, so no "
            "configuration can be judged; check `hwfit variants MODEL` for why each variant cannot run",
        )
    culprits = find_culprits(singles)
    nearest, lines, best_on = {}, [], None
    for constraint in culprits:
        found = _nearest(singles, constraint, culprits, slo)
        if found is None:
            continue
        value, evaluation = found
        nearest[constraint] = round(value, 6)
        best_on = best_on or evaluation.label
        pattern = _NEAREST[constraint][2]
        bound = (
            f" ({evaluation.p99_bound_note}; measured, they may show it reachable)"
            if constraint == "latency_p99_ms" and evaluation.p99_bounded
            else ""
        )
        lines.append(
            pattern.format(
                target=_target(slo, constraint, default_loss),
                rate=slo.throughput_rps,
                headroom=slo.headroom,
                value=value,
                on=f"{evaluation.label} (max batch {evaluation.max_batch})",
            )
            + bound
        )
    message = "; ".join(lines) or "no configuration meets every constraint"
    return Infeasibility(constraints=culprits, message=message, nearest=nearest, best_candidate=best_on)


def _nearest(singles: list[Evaluation], constraint: str, culprits: list[str], slo: Slo):
    metric, best, _ = _NEAREST[constraint]
    # the nearest with this constraint relaxed alone (the others held), else with every culprit relaxed:
    # "the most is X req/s" must be X on a configuration accurate enough, when one carries anything
    alone = [e for e in singles if set(e.broke) <= relaxed(constraint)]
    together = [e for e in singles if set(e.broke) <= relaxed(constraint) | set(culprits)]
    values = []
    for evaluation in alone or together or singles:
        value = evaluation.capacity_rps * slo.headroom if metric == "sustainable" else getattr(evaluation, metric)
        if value is not None and math.isfinite(value):
            values.append((value, evaluation))
    if not values:
        return None
    return (min if best is min else max)(values, key=lambda row: row[0])


def _target(slo: Slo, constraint: str, default_loss: float | None) -> float:
    return {
        "latency_p99_ms": slo.latency_p99_ms,
        "throughput_rps": slo.throughput_rps,
        "peak_rps": slo.peak_rps or 0.0,
        # no limit in the SLO: hwfit's default tolerance is the one broken
        "max_accuracy_loss": slo.max_accuracy_loss if slo.max_accuracy_loss is not None else (default_loss or 0.0),
        "max_energy_j_per_inference": slo.max_energy_j_per_inference or 0.0,
        "max_cost_per_million": slo.max_cost_per_million or 0.0,
    }[constraint]


# --- words ------------------------------------------------------------------------------------


def _assumptions(slo: Slo, request: PlanRequest, outcome: SearchOutcome) -> list[str]:
    notes = [
        f"Requests arrive as a Poisson stream at the sustained {slo.throughput_rps:g} req/s; "
        "each pool is planned to be "
        f"at most {slo.headroom:.0%} busy"
        + (f" and to carry the peak of {slo.peak_rps:g} req/s." if slo.peak_rps else "."),
        "Service time of a batch = the measured mean at that batch size (linear between measured sizes); p99 adds the "
        "measured jitter (p99 - mean) at the max batch, because the queueing model takes service as deterministic.",
        "K replicas x t threads were measured running together on one device: they share its cores, caches and "
        "memory bandwidth.",
        "Pools on a CPU are charged for the cores they occupy (a share of the device's hourly price); GPU pools for "
        "whole devices. Prices: " + "; ".join(f"{o.name}: {o.price_how}" for o in request.offers.values()) + ".",
        "Energy per inference is that of the measured batch nearest the mean batch the batcher forms; idle power is "
        "not counted.",
    ]
    if slo.max_accuracy_loss is None and request.default_accuracy_loss is not None:
        notes.append(
            f"No max_accuracy_loss in the SLO: hwfit's default tolerance for this model applies "
            f"(loss <= {request.default_accuracy_loss:g})."
        )
    if not outcome.converged:
        notes.append(f"The search {outcome.note}; the plan is the best measured configuration so far.")
    return notes


def _answer(plan: Plan, chosen: Choice | None, baseline: Measurement | None, slo: Slo) -> str:
    measured = f"Measured {plan.search.measured} of the {plan.search.grid_size}-point grid"
    measured += f" (reused {plan.search.reused} stored points)." if plan.search.reused else "."
    if chosen is None:
        return f"No plan meets the SLO: {plan.infeasible.message if plan.infeasible else ''}. {measured}"
    parts = []
    for role, evaluation in chosen.pools:
        threads = (
            f"{evaluation.key.layout.threads} thread(s) each" if evaluation.key.layout.threads else "default threads"
        )
        units = (
            f" x {evaluation.units} {evaluation.key.family.device}s"
            if evaluation.units > 1
            else f" on {evaluation.key.family.device}"
        )
        parts.append(
            f"{evaluation.replicas} replica(s) of {evaluation.key.family.backend} "
            f"{evaluation.key.family.precision} ({threads}){units}, max batch {evaluation.max_batch}, "
            f"max queue delay {evaluation.max_queue_delay_ms:g} ms"
            + (f" as {role} for {evaluation.rate_rps:.4g} req/s" if len(chosen.pools) > 1 else "")
        )
    expected = plan.expected
    text = (
        f"Serve {plan.model.name} with " + " plus ".join(parts) + f": predicted p99 {expected.p99_ms:.3g} ms at "
        f"{slo.throughput_rps:g} req/s (target {slo.latency_p99_ms:g} ms), capacity {expected.capacity_rps:.4g} req/s"
    )
    if expected.j_per_inference is not None:
        text += f", {expected.j_per_inference:.3g} J/inference ({expected.energy_how or 'unknown how'})"
    if expected.cost_per_million is not None:
        text += f", ${expected.cost_per_million:.3g} per million"
    text += "."
    if baseline is not None and baseline.samples_per_s:
        ratio = expected.capacity_rps / baseline.samples_per_s
        text += (
            f" That is {ratio:.1f}x the throughput of the naive baseline, PyTorch eager fp32 at batch 1 "
            f"({baseline.samples_per_s:.3g} req/s measured on the same machine)."
        )
    return f"{text} {measured}"
