"""Measure few: find the grid's best configuration while measuring a small share of it.

The method is *optimism under uncertainty* (the idea of A* and of UCB), not successive halving
or a fitted surrogate, for one reason: it comes with a stopping rule that says when the answer
is right. Every unmeasured point gets an estimate that is meant to be optimistic — no better
than the truth would be bad — taken from its measured neighbours:

* along the batch axis, per-sample cost does not rise as the batch grows (batching amortises),
  so below a measured batch b₁ the time is at least s(b₁)·b/b₁, between b₁ and b₂ at least
  max(s(b₁), s(b₂)·b/b₂); above the last measured b₂ it shrinks per sample by at most the best
  per-doubling gain seen on that device (or 15% when none is seen yet);
* across layouts (K replicas × t threads), by the best ratio to the reference layout seen on
  another family of the same device, else by ideal scaling (t of T cores → T/t times slower per
  batch) with 15% of slack, since threads rarely scale perfectly;
* accuracy is a property of the family (backend × precision), measured once per family.

Each round evaluates every configuration with those curves (the queueing approximation, so a
round costs milliseconds), takes the best, and, if the points it rests on — its max batch B and
the batch below — are not all measured, measures them. When the best rests only on measurements
(and the simulation confirms its p99), no unmeasured configuration can beat it, because each of
their estimates is already optimistic. The search starts with one screening point per family (at
batch 8 on the widest layout) because nothing can be estimated without one.

Triton Model Analyzer's quick search is hill climbing; it can stop on a local optimum and does
not know when it has. Here the stop is a bound, and the budget (10% of the grid by default) only
bites when the estimates were too optimistic to converge in it; the result says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

from hwfit.errors import HwfitError
from hwfit.plan.configs import ConfigKey, ConfigPoints, Family, Layout, config_of, family_accuracy, group_points
from hwfit.plan.evaluate import ConfigData, DeviceOffer, Evaluation, confirm, evaluate
from hwfit.plan.slo import Slo
from hwfit.store import Measurement

SCREEN_BATCH = 8
DEFAULT_DOUBLING_GAIN = 0.85  # per-sample time may fall to 85% per doubling of the batch, at best
LAYOUT_SLACK = 0.85  # a layout may be 15% better than ideal thread scaling predicts
DEFAULT_BUDGET_SHARE = 0.10

Measure = Callable[[list[dict]], list[Measurement]]


class SearchError(HwfitError):
    """The search cannot start: no grid, no device offered, or nothing measurable."""


@dataclass
class SearchOutcome:
    best: Evaluation | None
    evaluations: list[Evaluation]  # every configuration evaluated on measurements only (confirmed ones simulated)
    data: dict[ConfigKey, ConfigData]
    grid_size: int
    measured: list[Measurement] = field(default_factory=list)  # measured by this search
    converged: bool = True
    note: str = ""
    groups: dict[ConfigKey, ConfigPoints] = field(default_factory=dict)


@dataclass
class Grid:
    """The points the search may measure: configuration -> batch sizes."""

    batches: dict[ConfigKey, list[int]]

    @classmethod
    def from_variants(cls, variants: Iterable[dict]) -> Grid:
        batches: dict[ConfigKey, set[int]] = {}
        for variant in variants:
            key, batch = config_of(variant)
            batches.setdefault(key, set()).add(batch)
        return cls({key: sorted(values) for key, values in batches.items()})

    @property
    def size(self) -> int:
        return sum(len(values) for values in self.batches.values())

    def families(self) -> list[Family]:
        return sorted({key.family for key in self.batches})

    def reference_layout(self, family: Family) -> Layout:
        """The widest single-replica layout of a family (most threads), the one screened first."""
        layouts = [key.layout for key in self.batches if key.family == family]
        singles = [layout for layout in layouts if layout.replicas == 1] or layouts
        return max(singles, key=lambda layout: (layout.threads is None, layout.threads or 0))


def search(grid: Grid, known: list[Measurement], slo: Slo, offers: dict[str, DeviceOffer],
           measure: Measure | None, budget: int | None = None, default_accuracy_loss: float | None = None,
           on_round: Callable[[str], None] | None = None) -> SearchOutcome:
    """Find the best configuration of `grid` for `slo`, measuring through `measure` what is missing."""
    if not grid.batches:
        raise SearchError("the grid is empty: no backend can run the model on the devices the SLO allows")
    budget = max(1, math.ceil(DEFAULT_BUDGET_SHARE * grid.size)) if budget is None else budget
    say = on_round or (lambda text: None)
    state = _State(grid, list(known), slo, offers, measure, budget, default_accuracy_loss)
    state.screen(say)
    outcome = state.converge(say)
    return outcome


class _State:
    def __init__(self, grid, known, slo, offers, measure, budget, default_accuracy_loss):
        self.grid, self.slo, self.offers = grid, slo, offers
        self.measure, self.budget, self.default_loss = measure, budget, default_accuracy_loss
        self.known = [m for m in known if config_of(m.variant)[0] in grid.batches]
        self.new: list[Measurement] = []
        self.confirmed: dict[tuple[ConfigKey, int], Evaluation] = {}

    # --- measuring -------------------------------------------------------------------------
    @property
    def left(self) -> int:
        return self.budget - len(self.new)

    def _measured_keys(self) -> set[str]:
        return {m.variant.get("key") or "" for m in self.known + self.new}

    def _take(self, variants: list[dict], say) -> None:
        fresh = [v for v in variants if v["key"] not in self._measured_keys()][: max(self.left, 0)]
        if not fresh or self.measure is None:
            return
        say(f"measuring {len(fresh)} point(s): {', '.join(v['key'] for v in fresh)}")
        self.new += list(self.measure(fresh))
        touched = {config_of(v)[0] for v in fresh}
        self.confirmed = {slot: e for slot, e in self.confirmed.items() if slot[0] not in touched}

    def screen(self, say) -> None:
        """One point per family that has none: batch 8 (or the nearest) on its widest layout."""
        groups = group_points(self.known)
        measured_families = {key.family for key, group in groups.items() if group.points or group.failures}
        wanted = []
        for family in self.grid.families():
            if family in measured_families:
                continue
            key = ConfigKey(family, self.grid.reference_layout(family))
            batch = min(self.grid.batches[key], key=lambda b: (abs(b - SCREEN_BATCH), b))
            wanted.append(key.variant(batch))
        if wanted:
            say(f"screening {len(wanted)} variant families, one point each")
            self._take(wanted, say)

    # --- the loop ----------------------------------------------------------------------------
    def converge(self, say) -> SearchOutcome:
        rounds = 0
        while True:
            rounds += 1
            groups = group_points(self.known + self.new)
            data = self._config_data(groups)
            ranked = self._rank(data, groups)
            if not ranked:
                return self._outcome(None, data, groups, False, "no configuration has a measured point to plan from")
            best = ranked[0][0]
            needed = self._needed(best, groups)
            if not needed:
                if (best.key, best.units) not in self.confirmed:
                    self._confirm(best.key, best.units, groups)
                    continue  # on measurements only, and simulated, it may rank differently: rank again
                return self._outcome(best, data, groups, True, f"converged in {rounds} rounds")
            if self.left <= 0 or self.measure is None:
                why = ("the measuring budget is spent" if self.measure is not None
                       else "measuring is off (plan from stored points only)")
                return self._settle(data, groups, why)
            before = len(self.new)
            self._take([best.key.variant(b) for b in needed], say)
            if len(self.new) == before:  # nothing new could be measured: avoid spinning
                return self._settle(data, groups, "the points the best estimate needs cannot be measured")

    def _confirm(self, key: ConfigKey, units: int, groups) -> Evaluation:
        """Evaluate a configuration on its measured points only, simulate its batching, and keep that."""
        measured = self._measured_data(groups[key], family_accuracy(groups), groups)
        offer = self.offers[key.family.device]
        options = {e.units: e for e in evaluate(measured, self.slo, offer, self.default_loss)}
        evaluation = options.get(units) or min(options.values(), key=lambda e: e.rank(self.slo.objective))
        evaluation = confirm(evaluation, measured, self.slo, self.default_loss)
        self.confirmed[(key, units)] = evaluation
        return evaluation

    def _settle(self, data, groups, why: str) -> SearchOutcome:
        """The best configuration that rests on measurements only, when the search must stop early."""
        measured_only = self._measured_evaluations(groups)
        best = min(measured_only, key=lambda e: e.rank(self.slo.objective)) if measured_only else None
        if best is not None:
            best = self.confirmed.get((best.key, best.units)) or self._confirm(best.key, best.units, groups)
        return self._outcome(best, data, groups, False, f"stopped before convergence: {why}")

    def _outcome(self, best, data, groups, converged, note) -> SearchOutcome:
        return SearchOutcome(best, self._measured_evaluations(groups), data, self.grid.size, list(self.new),
                             converged, note, groups)

    def _rank(self, data: dict[ConfigKey, ConfigData], groups) -> list[tuple[Evaluation, ConfigData]]:
        rows = []
        for key, config_data in data.items():
            offer = self.offers.get(key.family.device)
            if offer is None:
                continue
            for evaluation in evaluate(config_data, self.slo, offer, self.default_loss):
                evaluation = self.confirmed.get((key, evaluation.units), evaluation)
                rows.append((evaluation, config_data))
        rows.sort(key=lambda row: row[0].rank(self.slo.objective))
        return rows

    def _needed(self, evaluation: Evaluation, groups) -> list[int]:
        """Grid batch sizes the evaluation rests on that are not measured: its B and the batch below."""
        batches = self.grid.batches[evaluation.key]
        group = groups.get(evaluation.key)
        measured = set(group.points) | set(group.failures) if group else set()
        below = [b for b in batches if b < evaluation.max_batch]
        wanted = [evaluation.max_batch] + ([below[-1]] if below else [])
        return [b for b in wanted if b not in measured and b in batches]

    def _measured_evaluations(self, groups) -> list[Evaluation]:
        """Every configuration with a measured point, evaluated on measurements only."""
        accuracy = family_accuracy(groups)
        rows = []
        for key, group in groups.items():
            offer = self.offers.get(key.family.device)
            if not group.points or offer is None or key not in self.grid.batches:
                continue
            config_data = self._measured_data(group, accuracy, groups)
            for evaluation in evaluate(config_data, self.slo, offer, self.default_loss):
                rows.append(self.confirmed.get((key, evaluation.units), evaluation))
        return rows

    # --- curves: measured points, and optimistic estimates for the rest -----------------------
    def _config_data(self, groups) -> dict[ConfigKey, ConfigData]:
        accuracy = family_accuracy(groups)
        gains = _doubling_gains(groups)
        ratios = _layout_ratios(groups, self.grid)
        data = {}
        for key, batches in self.grid.batches.items():
            group = groups.get(key)
            batches = _usable_batches(batches, group)
            if not batches:
                continue
            if group is not None and group.points and set(batches) <= set(group.points):
                data[key] = self._measured_data(group, accuracy, groups)
                continue
            estimate = self._estimated_data(key, batches, groups, accuracy, gains, ratios)
            if estimate is not None:
                data[key] = estimate
        return data

    def _measured_data(self, group: ConfigPoints, accuracy, groups) -> ConfigData:
        energy, how = _energy(group, groups, self.offers)
        return ConfigData(
            key=group.key, service_ms=group.service_ms(), accuracy_loss=accuracy.get(group.key.family),
            energy_j=energy, energy_how=how, jitter_ms=group.jitter_ms,
            measured_from=[m.variant_key for _, m in sorted(group.points.items())],
        )

    def _estimated_data(self, key, batches, groups, accuracy, gains, ratios) -> ConfigData | None:
        group = groups.get(key)
        own = group.service_ms() if group else {}
        if own:
            times = {b: own.get(b) or _along_batch(own, b, gains.get(key.family.device)) for b in batches}
        else:
            reference = _reference_curve(key, groups, self.grid)
            if reference is None:
                return None
            ref_layout, ref_times = reference
            ratio = ratios.get((key.family.device, ref_layout, key.layout)) or _ideal_ratio(
                ref_layout, key.layout, self.offers.get(key.family.device))
            times = {b: _along_batch(ref_times, b, gains.get(key.family.device)) * ratio for b in batches}
        energy, how = _energy(group, groups, self.offers) if group else ({}, None)
        return ConfigData(
            key=key, service_ms=times, accuracy_loss=accuracy.get(key.family), energy_j=energy, energy_how=how,
            jitter_ms=group.jitter_ms if group else (lambda batch: 0.0),
            estimated=frozenset(b for b in batches if b not in own),
            measured_from=[m.variant_key for _, m in sorted(group.points.items())] if group else [],
        )


def _usable_batches(batches: list[int], group: ConfigPoints | None) -> list[int]:
    """Grid batch sizes below the first failure (a batch that ran out of memory rules out bigger ones)."""
    if group is None or not group.failures:
        return batches
    first_failure = min(group.failures)
    return [b for b in batches if b < first_failure]


def _along_batch(points: dict[int, float], batch: int, gain: float | None) -> float:
    """An optimistic service time at `batch` from measured (batch -> ms) points of one configuration."""
    if batch in points:
        return points[batch]
    measured = sorted(points)
    lower = [b for b in measured if b < batch]
    upper = [b for b in measured if b > batch]
    if upper and not lower:
        b1 = upper[0]
        return points[b1] * batch / b1
    if upper and lower:
        b0, b1 = lower[-1], upper[0]
        return max(points[b0], points[b1] * batch / b1)
    b0 = lower[-1]
    doublings = math.log2(batch / b0)
    per_sample = points[b0] / b0 * (gain or DEFAULT_DOUBLING_GAIN) ** doublings
    return max(points[b0], per_sample * batch)


def _doubling_gains(groups: dict[ConfigKey, ConfigPoints]) -> dict[str, float]:
    """Per device: the best (lowest) per-sample time ratio seen from a batch to the next measured
    one, per doubling — how much batching can still help, at most, judging by the neighbours."""
    gains: dict[str, float] = {}
    for key, group in groups.items():
        times = group.service_ms()
        measured = sorted(times)
        for b0, b1 in zip(measured, measured[1:]):
            ratio = (times[b1] / b1) / (times[b0] / b0)
            per_doubling = ratio ** (1.0 / math.log2(b1 / b0))
            device = key.family.device
            gains[device] = min(gains.get(device, 1.0), max(per_doubling, 0.5))
    return gains


def _reference_curve(key: ConfigKey, groups, grid: Grid) -> tuple[Layout, dict[int, float]] | None:
    """The measured curve of the same family in another layout (the reference layout first)."""
    reference = grid.reference_layout(key.family)
    candidates = sorted((g for k, g in groups.items() if k.family == key.family and g.points),
                        key=lambda g: (g.key.layout != reference, -len(g.points)))
    if not candidates:
        return None
    return candidates[0].key.layout, candidates[0].service_ms()


def _layout_ratios(groups, grid: Grid) -> dict[tuple[str, Layout, Layout], float]:
    """(device, from layout, to layout) -> the lowest per-batch time ratio seen at a common batch
    size on any family: an optimistic guide for families where the target layout is unmeasured."""
    by_family: dict[Family, dict[Layout, dict[int, float]]] = {}
    for key, group in groups.items():
        if group.points:
            by_family.setdefault(key.family, {})[key.layout] = group.service_ms()
    ratios: dict[tuple[str, Layout, Layout], float] = {}
    for family, layouts in by_family.items():
        for source, source_times in layouts.items():
            for target, target_times in layouts.items():
                common = set(source_times) & set(target_times)
                if source == target or not common:
                    continue
                ratio = min(target_times[b] / source_times[b] for b in common)
                slot = (family.device, source, target)
                ratios[slot] = min(ratios.get(slot, math.inf), ratio)
    return ratios


def _ideal_ratio(source: Layout, target: Layout, offer: DeviceOffer | None) -> float:
    """Per-batch time of `target` over `source` if threads scaled perfectly, with some slack."""
    cores = offer.cores if offer else None
    source_threads = source.threads or cores or 1
    target_threads = target.threads or cores or 1
    busy_cores = max(source_threads, target.replicas * target_threads)
    contention = busy_cores / (cores or busy_cores) if cores else 1.0
    return max(source_threads / target_threads * max(contention, 1.0) * LAYOUT_SLACK, 0.05)


def _energy(group: ConfigPoints | None, groups, offers) -> tuple[dict[int, float], str | None]:
    """J per sample by batch: measured where the point metered it, else scaled from the family's
    single-replica point at the same batch by cores used and throughput (energy ∝ busy cores × time)."""
    if group is None:
        return {}, None
    own = {b: m.energy_j_per_sample for b, m in group.points.items() if m.energy_j_per_sample is not None}
    if own:
        hows = {m.energy_how for m in group.points.values() if m.energy_j_per_sample is not None}
        return own, "/".join(sorted(h for h in hows if h)) or None
    offer = offers.get(group.key.family.device)
    cores = offer.cores if offer else None
    for key, other in groups.items():
        if key.family != group.key.family or key == group.key:
            continue
        scaled = {}
        for batch, measurement in group.points.items():
            source = other.points.get(batch)
            if source is None or source.energy_j_per_sample is None:
                continue
            source_cores = key.layout.cores(cores) or 1
            target_cores = group.key.layout.cores(cores) or 1
            scaled[batch] = (source.energy_j_per_sample * (target_cores / measurement.samples_per_s)
                             / (source_cores / source.samples_per_s))
        if scaled:
            return scaled, f"estimated (scaled from {key.label} by cores and throughput)"
    return {}, None
