"""Measure few: find the grid's best configuration while measuring a small share of it.

The method is *optimism under uncertainty* (the idea of A* and of UCB bandits) over a surrogate
model, not successive halving or hill climbing, because it comes with a stopping rule that says
when the answer is right:

* Every unmeasured point gets an estimate from a rank-one model of log service time
  (surrogate.py): e[family] + g[layout](batch). One screening point per family (batch 8 on one
  replica with one thread) fixes the family's speed; points measured on any family teach every
  family how batch size and layout (K replicas × t threads) scale its time, except that a layout
  is never estimated slower than ideal scaling from the screened one (backends differ too much in
  how they share cores for one to rule a layout out for another). Cells no family has measured
  follow a prior (an affine batch time; ideal scaling across layouts). A configuration measured at
  some batch sizes is estimated at the others from its own times and the shared batch shape; where
  its family was measured at that batch size on a narrower layout (fewer replicas and threads), from
  that time scaled ideally, which bounds it (a family's batch shape is its own: int8 kernels gain to
  batch 64 where fp32 ones peak at 8).
* Estimates are made optimistic: 5% faster where the cell was measured on another family, 15%
  where it follows the prior; the queueing approximation's p99 is scaled down by 20% until the
  simulation confirms it (its error reaches a third); an unmeasured batch's jitter (p99 - mean)
  is the least measured jitter of its configuration scaled by service time, never a larger
  batch's. Accuracy is a family's, measured once.
* Each round evaluates every configuration (milliseconds: the approximation), takes the best,
  and measures one point it rests on and is not measured yet (its max batch B, the batch below, the
  batch size it mostly forms at the SLO's rate, in that order), then ranks again. The first point
  of a family beyond its screening is taken on the family's reference layout at that batch: it
  bounds every wider layout there, so one point can rule several configurations out.
  When the best rests only on measurements and its simulated p99 still ranks it first, every
  other configuration's optimistic estimate is already worse, so measuring more cannot win; an
  estimate within 2% of it (a tie is no proof) is measured first while the budget lasts; so is, once
  at its largest batch, a family that would win if its batch shape above its measured batches were
  the flattest plausible ((b/b0)^0.2): one screening point cannot tell a family whose batch time is
  mostly fixed cost, and the shape the others teach makes its large batches look slow. Likewise,
  before an SLO is called out of reach on a p99 the best estimate breaks, a family that would meet
  it were its small batches as fast as proportional scaling allows (no fixed cost) is measured once
  at its smallest batch: the others' shape carries their fixed cost down to batch 1.
* Energy of an unmeasured configuration: its time × the family's J per busy core-second on that
  many cores; a family not metered on them is carried there by the ratio the families metered on
  both show (a CPU's power is not proportional to its busy cores: an idle share is always drawn).
* Every evaluation on measurements alone (a best's confirmation, a search stopped by its budget, the
  planner's choice, an infeasible SLO's nearest targets) reads a configuration's measured curve with
  each unmeasured batch size given the time of the next measured one above it: none extrapolated
  below the smallest measured batch or interpolated across a gap, so the plan promises no p99, and
  names no nearest target, its measurements cannot back (and says where a p99 is such a bound).
* An SLO that even the optimistic estimates cannot meet stops there, and the search turns to what
  the plan will say instead: for each constraint to blame, the configuration nearest to it with
  the others held (the most carried, the lowest p99, the least accuracy loss, energy or cost), so
  that "the most reachable" is the grid's, not whatever happened to be measured. Each constraint
  gets its share of the budget left (the most carried and the lowest p99, searches along a curve,
  twice the others'); for accuracy, the first configuration of a less accurate family that meets
  the rest answers (the loss is the family's).

Triton Model Analyzer's quick search is hill climbing: it can stop on a local optimum and does
not know when it has. Here the stop is a bound (as good as the estimates are optimistic), and
the budget (10% of the grid by default) only bites when they were not; the plan then says so.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from hwfit.core import Config, Family, HwfitError, Layout, Variant
from hwfit.plan.configs import ConfigPoints, config_of, family_accuracy, group_points
from hwfit.plan.evaluate import ConfigData, DeviceOffer, Evaluation, confirm, culprits, evaluate, relaxed
from hwfit.plan.slo import Slo
from hwfit.plan.surrogate import MARGIN_UNKNOWN, fit, ideal_ratio, within
from hwfit.store import Measurement

SCREEN_BATCH = 8
P99_OPTIMISM = 0.8  # the queueing approximation errs by up to a third; unconfirmed p99s are scaled down
DEFAULT_BUDGET_SHARE = 0.10
LATENCY_BINDS = 0.5  # a p99 above this share of the target rests on every batch size formed (see _needed)
FORMED_COUNTS = 0.25  # a p99 below this share of the target is met whatever the batch formed costs (4x)
RIVAL_BAND = 0.02  # an estimate this close to the measured best (on the objective) is measured before stopping
FLATTEST = 0.2  # the flattest batch shape plausible above a measured batch: time x (b / b0) ** 0.2
NEAREST_FIRST = ("throughput_rps", "peak_rps", "latency_p99_ms")  # an infeasible SLO's nearest targets, in order

Measure = Callable[[list[Variant]], list[Measurement]]


class SearchError(HwfitError):
    """The search cannot start: no grid, no device offered, or nothing measurable."""


@dataclass
class SearchOutcome:
    best: Evaluation | None
    evaluations: list[Evaluation]  # every configuration evaluated on measurements only (confirmed ones simulated)
    data: dict[Config, ConfigData]
    grid_size: int
    measured: list[Measurement] = field(default_factory=list)  # measured by this search
    converged: bool = True
    note: str = ""
    groups: dict[Config, ConfigPoints] = field(default_factory=dict)


@dataclass
class Grid:
    """The points the search may measure: configuration -> batch sizes."""

    batches: dict[Config, list[int]]

    @classmethod
    def from_variants(cls, variants: Iterable[Variant]) -> Grid:
        batches: dict[Config, set[int]] = {}
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
        """The narrowest single-replica layout of a family (fewest threads), the one screened first:
        from one replica on one thread, ideal scaling to K replicas x t threads is an optimistic
        bound for every other layout (neither replicas nor threads scale better than linearly)."""
        layouts = [key.layout for key in self.batches if key.family == family]
        singles = [layout for layout in layouts if layout.replicas == 1] or layouts
        return min(singles, key=lambda layout: (layout.threads is None, layout.threads or 0))


def search(
    grid: Grid,
    known: list[Measurement],
    slo: Slo,
    offers: dict[str, DeviceOffer],
    measure: Measure | None,
    budget: int | None = None,
    default_accuracy_loss: float | None = None,
    on_round: Callable[[str], None] | None = None,
) -> SearchOutcome:
    """Find the best configuration of `grid` for `slo`, measuring through `measure` what is missing."""
    if not grid.batches:
        raise SearchError("the grid is empty: no backend can run the model on the devices the SLO allows")
    budget = max(1, math.ceil(DEFAULT_BUDGET_SHARE * grid.size)) if budget is None else budget
    say = on_round or (lambda text: None)
    state = _State(grid, list(known), slo, offers, measure, budget, default_accuracy_loss)
    state.screen(say)
    outcome = state.converge(say)
    if outcome.best is None or outcome.best.broke:
        outcome = state.nearest(say)
    return outcome


class _State:
    def __init__(self, grid, known, slo, offers, measure, budget, default_accuracy_loss):
        self.grid, self.slo, self.offers = grid, slo, offers
        self.measure, self.budget, self.default_loss = measure, budget, default_accuracy_loss
        self.known = [m for m in known if config_of(m.as_variant())[0] in grid.batches]
        self.new: list[Measurement] = []
        self.confirmed: dict[tuple[Config, int], Evaluation] = {}
        self.allowed: frozenset[str] = frozenset()  # constraints a configuration may break (nearest search)

    # --- measuring -------------------------------------------------------------------------
    @property
    def left(self) -> int:
        return self.budget - len(self.new)

    def _measured_keys(self) -> set[str]:
        return {m.variant_key for m in self.known + self.new}

    def _take(self, variants: list[Variant], say) -> None:
        fresh = [v for v in variants if v.key not in self._measured_keys()][: max(self.left, 0)]
        if not fresh or self.measure is None:
            return
        say(f"measuring {len(fresh)} point(s): {', '.join(v.key for v in fresh)}")
        self.new += list(self.measure(fresh))
        touched = {config_of(v)[0] for v in fresh}
        self.confirmed = {slot: e for slot, e in self.confirmed.items() if slot[0] not in touched}

    def screen(self, say) -> None:
        """One point per family that has none: batch 8 (or the nearest) on its reference layout."""
        groups = group_points(self.known)
        measured_families = {key.family for key, group in groups.items() if group.points or group.failures}
        wanted = []
        for family in self.grid.families():
            if family in measured_families:
                continue
            key = Config(family, self.grid.reference_layout(family))
            batch = min(self.grid.batches[key], key=lambda b: (abs(b - SCREEN_BATCH), b))
            wanted.append(key.variant(batch))
        if wanted:
            say(f"screening {len(wanted)} variant families, one point each")
            self._take(wanted, say)

    # --- the loop ----------------------------------------------------------------------------
    def converge(self, say, first_met: bool = False) -> SearchOutcome:
        """Measure where the best estimate lies until the best rests on measurements. While
        `self.allowed` names constraints (the search for an infeasible SLO's nearest target), those
        may be broken: the best is the one nearest to meeting them, on the objective. `first_met`:
        stop at the first configuration that meets the SLO on measurements (whether one does is
        the question, not which is best)."""
        rounds = 0
        while True:
            rounds += 1
            groups = group_points(self.known + self.new)
            data = self._config_data(groups)
            ranked = self._rank(data, groups)
            if not ranked:
                return self._outcome(None, data, groups, False, "no configuration has a measured point to plan from")
            met = self._first_met(groups) if first_met else None
            if met is not None:
                return self._outcome(met, data, groups, True, f"one meets it after {rounds} rounds")
            best = ranked[0][0]
            if set(best.broke) - self.allowed:
                # the estimates are optimistic: if the best breaks a constraint, every configuration does,
                # but for a family's own batch shape: steeper below its measured batches (probed here,
                # for a broken p99), or flatter above (the nearest search probes that when it converges;
                # probing here, each family looks promising on a rate out of every reach, and the
                # nearest search is left without budget)
                if self._probed_steep(best, data, groups, say):
                    continue
                measured_only = self._measured_evaluations(groups)
                settled = min(measured_only, key=lambda e: self._rank_key(e)) if measured_only else None
                return self._outcome(settled, data, groups, True, "no configuration meets every constraint")
            needed = self._needed(best, groups)
            if not needed:
                if (best.key, best.units) not in self.confirmed:
                    self._confirm(best.key, best.units, groups)
                    continue  # on measurements only, and simulated, it may rank differently: rank again
                rival = self._rival(best, ranked, groups)
                if self.left <= 0 or self.measure is None:
                    return self._outcome(best, data, groups, True, f"converged in {rounds} rounds")
                if rival is None:
                    if self._probed_flat(best, data, groups, say):
                        continue
                    return self._outcome(best, data, groups, True, f"converged in {rounds} rounds")
                best, needed = rival, self._needed(rival, groups)
            if self.left <= 0 or self.measure is None:
                why = (
                    "the measuring budget is spent"
                    if self.measure is not None
                    else "measuring is off (plan from stored points only)"
                )
                return self._settle(data, groups, why)
            before = len(self.new)
            self._take([self._bounding_point(best.key, needed[0], groups)], say)
            if len(self.new) == before:  # nothing new could be measured: avoid spinning
                return self._settle(data, groups, "the points the best estimate needs cannot be measured")

    def _first_met(self, groups) -> Evaluation | None:
        """The best configuration that meets the SLO on measurements, its batching simulated."""
        for evaluation in sorted(self._measured_evaluations(groups), key=self._rank_key):
            if evaluation.broke:
                break
            simulated = self.confirmed.get((evaluation.key, evaluation.units)) or self._confirm(
                evaluation.key, evaluation.units, groups
            )
            if not simulated.broke:
                return simulated
        return None

    def nearest(self, say) -> SearchOutcome:
        """No configuration meets the SLO: search, for each constraint to blame, the configuration
        that comes nearest to it (the most carried, the lowest p99, the least loss, energy or cost)
        with the other constraints held, so that the plan's "nearest reachable" targets are the
        grid's and not whatever the search happened to measure."""
        original = self.slo
        groups = group_points(self.known + self.new)
        blamed = culprits([row[0] for row in self._rank(self._config_data(groups), groups)])
        # the most carried and the lowest p99 first: a budget spent before the others still answers those
        blamed.sort(key=lambda c: NEAREST_FIRST.index(c) if c in NEAREST_FIRST else len(NEAREST_FIRST))
        budget = self.budget
        for index, constraint in enumerate(blamed):
            # each constraint its share of what is left (what one leaves goes to those after it): a
            # search towards one nearest target must not spend the budget the others need
            self.budget = min(budget, len(self.new) + _share(budget - len(self.new), blamed[index:]))
            for relaxed_slo in self._relaxed_slos(constraint, groups):
                self.slo, self.confirmed = relaxed_slo, {}
                # short of throughput, the nearest is the most carried: go on towards it; relaxing the
                # other constraints either lets a configuration through or does not (stop as soon as not)
                self.allowed = frozenset(relaxed(constraint) if constraint in ("throughput_rps", "peak_rps") else ())
                # accuracy is a family's: any configuration of the family that meets the rest answers it
                outcome = self.converge(say, first_met=constraint == "max_accuracy_loss")
                if outcome.best is not None and not outcome.best.broke:
                    break  # accuracy: the least loss that meets the rest is found (families in order)
        self.budget, self.slo, self.confirmed, self.allowed = budget, original, {}, frozenset()
        groups = group_points(self.known + self.new)
        data = self._config_data(groups)
        measured_only = self._measured_evaluations(groups)
        best = min(measured_only, key=lambda e: e.rank(original.objective)) if measured_only else None
        spent = " (the measuring budget is spent)" if self.left <= 0 else ""
        note = (
            f"no configuration meets every constraint; searched the nearest to {', '.join(blamed)}{spent}"
            if blamed
            # an estimate meets them all, but what was measured does not: the search could not go on
            else f"no configuration measured meets every constraint, though an estimate does{spent}"
        )
        return self._outcome(best, data, groups, True, note)

    def _relaxed_slos(self, constraint: str, groups) -> list[Slo]:
        """The SLO with `constraint` dropped and its own measure as the objective (accuracy, which is no
        objective: the limit raised to each less accurate family's loss in turn)."""
        unbounded = 1e12
        if constraint in ("throughput_rps", "peak_rps"):
            # the p99 target stays, allowed to be broken: the plan reports the most carried by each
            # configuration at its batching nearest to the p99 target (see evaluate._pick), and that
            # batching is what this search must measure, not the one that carries the most at any p99
            return [self.slo.model_copy(update={"peak_rps": None, "objective": "throughput"})]
        if constraint == "latency_p99_ms":
            return [self.slo.model_copy(update={"latency_p99_ms": unbounded, "objective": "latency"})]
        if constraint == "max_energy_j_per_inference":
            return [self.slo.model_copy(update={"max_energy_j_per_inference": None, "objective": "energy"})]
        if constraint == "max_cost_per_million":
            return [self.slo.model_copy(update={"max_cost_per_million": None, "objective": "cost"})]
        limit = self.slo.max_accuracy_loss if self.slo.max_accuracy_loss is not None else self.default_loss
        losses = sorted({loss for loss in family_accuracy(groups).values() if limit is None or loss > limit})
        return [self.slo.model_copy(update={"max_accuracy_loss": loss}) for loss in losses]

    def _confirm(self, key: Config, units: int, groups) -> Evaluation:
        """Evaluate a configuration on its measured points only, simulate its batching, and keep that."""
        measured = self._measured_data(groups[key], family_accuracy(groups), groups)
        offer = self.offers[key.family.device]
        options = {e.units: e for e in evaluate(measured, self.slo, offer, self.default_loss)}
        evaluation = options.get(units) or min(options.values(), key=lambda e: e.rank(self.slo.objective))
        evaluation = confirm(evaluation, measured, self.slo, self.default_loss)
        self.confirmed[(key, units)] = evaluation
        return evaluation

    def _settle(self, data, groups, why: str) -> SearchOutcome:
        """The best configuration that rests on measurements only (`_measured_data`), when the search
        must stop early."""
        self.confirmed = {}  # confirmed on the points of earlier rounds: confirm again on all of them
        measured_only = self._measured_evaluations(groups)
        best = min(measured_only, key=lambda e: self._rank_key(e)) if measured_only else None
        if best is not None:
            best = self._confirm(best.key, best.units, groups)
        return self._outcome(best, data, groups, False, f"stopped before convergence: {why}")

    def _outcome(self, best, data, groups, converged, note) -> SearchOutcome:
        """What the planner chooses from, and answers an infeasible SLO from: every configuration on its
        measured points alone (`_measured_data`)."""
        evaluations = self._measured_evaluations(groups)
        return SearchOutcome(best, evaluations, data, self.grid.size, list(self.new), converged, note, groups)

    def _rank(self, data: dict[Config, ConfigData], groups) -> list[tuple[Evaluation, ConfigData]]:
        rows = []
        for key, config_data in data.items():
            offer = self.offers.get(key.family.device)
            if offer is None:
                continue
            for evaluation in evaluate(config_data, self.slo, offer, self.default_loss, p99_optimism=P99_OPTIMISM):
                confirmed = self.confirmed.get((key, evaluation.units))
                # a confirmed evaluation stands for the config unless the estimate found a batch
                # size it has not measured yet (that one may still win: measure it first)
                if confirmed is not None and not evaluation.estimated:
                    evaluation = confirmed
                rows.append((evaluation, config_data))
        rows.sort(key=lambda row: self._rank_key(row[0]))
        return rows

    def _bounding_point(self, key: Config, batch: int, groups) -> Variant:
        """The point to measure for `key` at `batch`: the family's reference layout (one replica, the
        fewest threads) at that batch first, when unmeasured. Ideal scaling from it bounds every wider
        layout, so one point settles several configurations (a family slow at that batch is slow on
        every layout); the configuration's own point follows if it can still win."""
        reference = Config(key.family, self.grid.reference_layout(key.family))
        group = groups.get(reference)
        measured = set(group.points) | set(group.failures) if group else set()
        probed = len(measured) > 1  # beyond its screening point: the family's reference was probed once
        if key != reference and not probed and batch in self.grid.batches.get(reference, []) and batch not in measured:
            return reference.variant(batch)
        return key.variant(batch)

    def _rival(self, best: Evaluation, ranked, groups) -> Evaluation | None:
        """An estimated configuration within RIVAL_BAND of the measured best on the objective: a tie is
        no proof (an estimate is optimistic only as far as its margin holds), so measure it first."""
        count, value = self._rank_key(best)[0], best.objective_value(self.slo.objective)
        for evaluation, _ in ranked[1:]:
            if self._rank_key(evaluation)[0] != count:
                return None
            if evaluation.objective_value(self.slo.objective) > value + RIVAL_BAND * abs(value):
                return None
            if evaluation.estimated and self._needed(evaluation, groups):
                return evaluation
        return None

    def _probed_flat(self, best: Evaluation, data, groups, say) -> bool:
        """Whether a family that might beat `best` under a flatter batch shape was measured now (see
        _shape_probe): before stopping, a family whose batch time is mostly fixed cost (the CNN's
        OpenVINO bf16 on this CPU: batch 64 takes 1.6x batch 8, where ORT int8 takes 9x) looked 3x
        slower at batch 64 under the shape the others taught, and was never measured there."""
        if self.slo.objective == "latency":
            return False  # the p99 rests on the batches formed, not on the largest
        return self._take_probe(self._shape_probe(best, data, groups, _flattened, largest=True), say)

    def _probed_steep(self, best: Evaluation, data, groups, say) -> bool:
        """Whether a family that might meet the p99 `best` breaks, were its small batches as fast as
        proportional scaling from its measured ones allows, was measured now at its smallest batch
        (see _shape_probe). The shape other families teach below a measured batch carries their
        fixed cost: MiniLM's OpenVINO bf16 takes 9% of its batch-16 time at batch 1 where PyTorch
        bf16 takes 22%, so its batch 1 looked 2.4x too slow, and a p99 that only its batch 1 meets
        looked out of every reach."""
        if "latency_p99_ms" not in set(best.broke) - self.allowed:
            return False
        return self._take_probe(self._shape_probe(best, data, groups, _steepened, largest=False), say)

    def _take_probe(self, probe: Variant | None, say) -> bool:
        if probe is None or self.left <= 0 or self.measure is None:
            return False
        before = len(self.new)
        self._take([probe], say)
        return len(self.new) > before

    def _shape_probe(self, best: Evaluation, data, groups, reshape, largest: bool) -> Variant | None:
        """A family whose batch shape beyond its measured batches is unknown, and which would outrank
        `best` were that shape the most favourable plausible (`reshape`: flatter above, steeper below),
        measured once on its reference layout at its largest (or smallest) batch: a family's shape is
        its own, and one screening point cannot tell it. Only when the search would otherwise stop,
        so the order it measures in is unchanged."""
        target = self._rank_key(best)
        probes: dict[Family, tuple[tuple, Variant]] = {}  # family -> (its best reshaped rank, the point)
        for key, config_data in data.items():
            offer = self.offers.get(key.family.device)
            reference = Config(key.family, self.grid.reference_layout(key.family))
            usable = _usable_batches(self.grid.batches.get(reference, []), groups.get(reference))
            if not config_data.estimated or offer is None or not usable:
                continue
            group = groups.get(reference)
            end = usable[-1] if largest else usable[0]
            if group is not None and (end in group.points or end in group.failures):
                continue  # the family's shape out to that end is measured
            reshaped = reshape(config_data, groups)
            if reshaped is None:
                continue
            evaluations = evaluate(reshaped, self.slo, offer, self.default_loss, p99_optimism=P99_OPTIMISM)
            rank = min((self._rank_key(e) for e in evaluations), default=None)
            if rank is not None and rank < target and (key.family not in probes or rank < probes[key.family][0]):
                probes[key.family] = (rank, reference.variant(end))
        return min(probes.values(), key=lambda row: row[0])[1] if probes else None

    def _rank_key(self, evaluation: Evaluation) -> tuple:
        """Evaluation.rank, counting only the constraints broken that are not allowed to be."""
        return (len(set(evaluation.broke) - self.allowed), *evaluation.rank(self.slo.objective)[1:])

    def _needed(self, evaluation: Evaluation, groups) -> list[int]:
        """Grid batch sizes the evaluation rests on that are not measured, in the order to measure them:
        for a latency objective, from the batch the batcher mostly forms at the SLO's rate (its mean,
        rounded down) up to B; otherwise B, the batch below and the batch mostly formed (and, where the
        p99 binds, every batch size between)."""
        batches = self.grid.batches[evaluation.key]
        group = groups.get(evaluation.key)
        measured = set(group.points) | set(group.failures) if group else set()
        below = [b for b in batches if b < evaluation.max_batch]
        # the batches the batcher really forms at this rate: the grid size at or under the mean
        formed = [b for b in batches if b <= max(evaluation.mean_batch, batches[0])]
        low = formed[-1] if formed else batches[0]
        if self.slo.objective == "latency":
            # the p99 is the objective: it rests first on the batches formed at the rate, and B only
            # forms in the tail. The smallest formed batch shows a family's fixed cost (the
            # part of its time no batch amortizes, which one screening point at batch 8 cannot tell),
            # so it rules a configuration out soonest; then every batch size up to B, each of which the
            # batcher forms (one unmeasured in between, interpolated, may be slower than the line
            # through its neighbours, and the plan would miss its target there).
            wanted = [b for b in batches if low <= b <= evaluation.max_batch]
        else:
            # B first (what the pool carries at its peak), the batch below, then the batch mostly formed
            # where it counts (energy is that batch's; the p99 rests on it); where the p99 binds, every
            # batch size from that one up to B: one unmeasured in between (interpolated) may be slower
            # than the line through its neighbours
            counts = self.slo.objective == "energy" or evaluation.p99_ms > FORMED_COUNTS * self.slo.latency_p99_ms
            wanted = [evaluation.max_batch] + ([below[-1]] if below else []) + (formed[-1:] if counts else [])
            if evaluation.p99_ms > LATENCY_BINDS * self.slo.latency_p99_ms:
                # the batch mostly formed first: the p99 rests on it before B, which forms only in the tail
                wanted = [low, *wanted] + [b for b in batches if low < b < evaluation.max_batch]
        return [b for b in dict.fromkeys(wanted) if b not in measured and b in batches]

    def _measured_evaluations(self, groups) -> list[Evaluation]:
        """Every configuration with a measured point, evaluated on measurements only (`_measured_data`)."""
        accuracy = family_accuracy(groups)
        energy = EnergyConstants.from_groups(groups, {name: offer.cores for name, offer in self.offers.items()})
        rows = []
        for key, group in groups.items():
            offer = self.offers.get(key.family.device)
            if not group.points or offer is None or key not in self.grid.batches:
                continue
            config_data = self._measured_data(group, accuracy, groups, energy)
            for evaluation in evaluate(config_data, self.slo, offer, self.default_loss):
                rows.append(self.confirmed.get((key, evaluation.units), evaluation))
        return rows

    # --- curves: measured points, and optimistic estimates for the rest -----------------------
    def _config_data(self, groups) -> dict[Config, ConfigData]:
        accuracy = family_accuracy(groups)
        references = {family: self.grid.reference_layout(family) for family in self.grid.families()}
        cores = {name: offer.cores for name, offer in self.offers.items()}
        model = fit(groups, references, SCREEN_BATCH, cores)
        energy = EnergyConstants.from_groups(groups, cores)
        by_family: dict[Family, dict[Layout, dict[int, float]]] = {}
        for key, group in groups.items():
            by_family.setdefault(key.family, {})[key.layout] = group.service_ms()
        data = {}
        for key, batches in self.grid.batches.items():
            group = groups.get(key)
            batches = _usable_batches(batches, group)
            if not batches:
                continue
            if group is not None and group.points and set(batches) <= set(group.points):
                data[key] = measured_config_data(group, accuracy, groups, self.offers, energy)
                continue
            siblings = {
                layout: times for layout, times in by_family.get(key.family, {}).items() if layout != key.layout
            }
            estimate = self._estimated_data(key, batches, group, accuracy, model, energy, siblings)
            if estimate is not None:
                data[key] = estimate
        return data

    def _measured_data(self, group: ConfigPoints, accuracy, groups, energy=None) -> ConfigData:
        """A configuration on its measured points alone. The batcher forms every batch size up to B, so a
        curve read as a line below its smallest measured batch, or across a gap, could decide the p99 (a
        line through batches 8 and 64 put batch 1 at a fiftieth of batch 8's time, and a plan broke the
        CNN's batch-1 p99 on the grid): each unmeasured batch size is bounded instead (`_bounded`)."""
        data = measured_config_data(group, accuracy, groups, self.offers, energy)
        return _bounded(data, self.grid.batches.get(group.key, []))

    def _estimated_data(self, key, batches, group, accuracy, model, energy_constants, siblings) -> ConfigData | None:
        own = group.service_ms() if group else {}
        times = {}
        for batch in batches:
            across = model.estimate_across_layouts_ms(key, batch, siblings)
            if batch in own:
                estimate = own[batch]
            elif across is not None:  # the family measured at this batch on another layout: its own shape
                estimate = across
            elif own:  # the configuration's own level, the shared shape along the batch axis
                estimate = model.estimate_from_own_ms(key, batch, own)
            else:
                estimate = model.estimate_ms(key, batch)
            if estimate is None:
                return None
            times[batch] = estimate
        cores = {name: offer.cores for name, offer in self.offers.items()}
        energy, how = _energy_for_times(key, times, energy_constants, cores, group)
        return ConfigData(
            key=key,
            service_ms=times,
            accuracy_loss=accuracy.get(key.family),
            energy_j=energy,
            energy_how=how,
            jitter_ms=_optimistic_jitter(group, times),
            estimated=frozenset(b for b in batches if b not in own),
            measured_from=[m.variant_key for _, m in sorted(group.points.items())] if group else [],
        )


def _share(left: int, constraints: list[str]) -> int:
    """The first constraint's share of the `left` points: the most carried and the lowest p99 (a
    search along a curve) weigh twice what the others do (whether a family meets the rest)."""
    weights = [2 if c in NEAREST_FIRST else 1 for c in constraints]
    return math.ceil(max(left, 0) * weights[0] / sum(weights))


def measured_config_data(
    group: ConfigPoints,
    accuracy: dict[Family, float],
    groups: dict[Config, ConfigPoints],
    offers: dict[str, DeviceOffer],
    energy_constants: EnergyConstants | None = None,
) -> ConfigData:
    """A configuration's curve and energy from its measured points only (no estimates).
    `energy_constants`: those of `groups`, where the caller has them (else derived here)."""
    cores = {name: offer.cores for name, offer in offers.items()}
    constants = energy_constants or EnergyConstants.from_groups(groups, cores)
    energy, how = _energy(group, constants, cores)
    return ConfigData(
        key=group.key,
        service_ms=group.service_ms(),
        accuracy_loss=accuracy.get(group.key.family),
        energy_j=energy,
        energy_how=how,
        jitter_ms=group.jitter_ms,
        measured_from=[m.variant_key for _, m in sorted(group.points.items())],
    )


def _bounded(data: ConfigData, grid_batches: list[int]) -> ConfigData:
    """The measured curve with each grid batch size up to the largest measured: an unmeasured one takes
    the time of the next measured batch above it (a batch is not slower than a larger one), so a plan on
    it promises no p99 its measurements cannot back."""
    measured, times = data.service_ms, {}
    for batch in grid_batches:
        above = [b for b in measured if b >= batch]
        if not above:
            break
        times[batch] = measured[min(above)]
    return replace(data, service_ms=times, bounded=frozenset(times) - frozenset(measured))


def _anchors(data: ConfigData, groups) -> list[tuple[int, float]]:
    """(batch, ms) measured on `data`'s configuration, and on narrower layouts of its family scaled
    ideally to it (a bound: neither replicas nor threads scale better than linearly)."""
    key = data.key
    anchors = [(b, ms) for b, ms in data.service_ms.items() if b not in data.estimated]
    for other, group in groups.items():
        if other.family == key.family and other != key and within(other.layout, key.layout):
            ratio = ideal_ratio(other.layout, key.layout, None)
            anchors += [(b, ms * ratio) for b, ms in group.service_ms().items()]
    return anchors


def _reshaped(data: ConfigData, groups, bound: Callable[[int, list[tuple[int, float]]], float | None]):
    """`data` with each estimated batch made as fast as `bound(batch, anchors)` allows, where faster."""
    anchors = _anchors(data, groups)
    if not anchors:
        return None
    times, energy = dict(data.service_ms), dict(data.energy_j)
    for batch in data.estimated:
        fastest = bound(batch, anchors)
        if fastest is not None and fastest < times[batch]:
            if batch in energy:
                energy[batch] *= fastest / times[batch]
            times[batch] = fastest
    return replace(data, service_ms=times, energy_j=energy, jitter_ms=_optimistic_jitter(groups.get(data.key), times))


def _flattened(data: ConfigData, groups) -> ConfigData | None:
    """Every estimated batch above a measured one as fast as the flattest plausible shape allows:
    time x (b / b0) ** FLATTEST, less the margin of a cell no family taught."""

    def bound(batch, anchors):
        below = [ms * (batch / b) ** FLATTEST for b, ms in anchors if b < batch]
        return min(below) * (1.0 - MARGIN_UNKNOWN) if below else None

    return _reshaped(data, groups, bound)


def _steepened(data: ConfigData, groups) -> ConfigData | None:
    """Every estimated batch below a measured one as fast as proportional scaling allows (no fixed
    cost at all: a batch of b takes b / b0 of batch b0's time, the fastest a smaller batch can be)."""

    def bound(batch, anchors):
        above = [ms * batch / b for b, ms in anchors if b > batch]
        return min(above) if above else None

    return _reshaped(data, groups, bound)


def _optimistic_jitter(group: ConfigPoints | None, times: dict[int, float]) -> Callable[[int], float]:
    """p99 - mean of a batch: measured where it was; at an estimated batch, the least of the measured
    jitters scaled by the service time (noise grows with the batch's time): the jitter of batch 16
    put on batch 1 made a configuration that meets a tight p99 at batch 1 look as if it could not."""
    own = group.service_ms() if group else {}
    if not own:
        return lambda batch: 0.0

    def jitter(batch: int) -> float:
        if batch in own:
            return group.jitter_ms(batch)
        scaled = [group.jitter_ms(b) * min(1.0, times.get(batch, ms) / ms) for b, ms in own.items() if ms > 0]
        return min(scaled, default=0.0)

    return jitter


def _usable_batches(batches: list[int], group: ConfigPoints | None) -> list[int]:
    """Grid batch sizes below the first failure (a batch that ran out of memory rules out bigger ones)."""
    if group is None or not group.failures:
        return batches
    first_failure = min(group.failures)
    return [b for b in batches if b < first_failure]


def _cores(key: Config, device_cores: dict[str, int | None]) -> float:
    return float(key.layout.cores(device_cores.get(key.family.device)) or 1)


@dataclass(frozen=True)
class EnergyConstants:
    """k = J per sample / (cores × seconds per sample per replica), per family and per cores kept busy.

    Energy per sample = power × time; a CPU estimate (and, roughly, a busy accelerator) draws power
    in proportion to the cores kept busy, so k carries a family's energy to other batch sizes:
    J(layout, b) = k × cores × s(b) / (K × b). Power is not quite proportional to cores (a share of it
    is the device's idle draw, and a layout may keep fewer cores busy than it holds), so k is kept per
    (family, cores); a family not metered on a layout's cores is carried there from its nearest metered
    cores by the median ratio the families metered on both show.
    """

    by_cores: dict[Family, dict[float, float]]
    hows: dict[Family, str]

    @classmethod
    def from_groups(cls, groups, device_cores) -> EnergyConstants:
        found: dict[Family, dict[float, list[float]]] = {}
        hows: dict[Family, set] = {}
        for key, group in groups.items():
            cores = _cores(key, device_cores)
            for batch, measurement in group.points.items():
                if measurement.energy_j_per_sample is None or not measurement.latency:
                    continue
                seconds_per_sample = measurement.latency.mean_ms / 1000.0 / (batch * key.layout.replicas)
                found.setdefault(key.family, {}).setdefault(cores, []).append(
                    measurement.energy_j_per_sample / (cores * seconds_per_sample)
                )
                hows.setdefault(key.family, set()).add(measurement.energy_how or "unknown")
        return cls(
            by_cores={family: {c: statistics.median(ks) for c, ks in per.items()} for family, per in found.items()},
            hows={family: "/".join(sorted(values)) for family, values in hows.items()},
        )

    def k(self, family: Family, cores: float) -> float | None:
        own = self.by_cores.get(family)
        if not own:
            return None
        if cores in own:
            return own[cores]
        nearest = min(own, key=lambda c: (abs(math.log(c / cores)), c))
        ratios = [
            per[cores] / per[nearest]
            for other, per in self.by_cores.items()
            if other != family and other.device == family.device and cores in per and nearest in per
        ]
        return own[nearest] * (statistics.median(ratios) if ratios else 1.0)


def _energy_for_times(
    key: Config, times: dict[int, float], constants: EnergyConstants, device_cores, group
) -> tuple[dict, str | None]:
    own = {
        b: m.energy_j_per_sample
        for b, m in (group.points.items() if group else [])
        if m.energy_j_per_sample is not None
    }
    cores = _cores(key, device_cores)
    k = constants.k(key.family, cores)
    if k is None:
        return own, (
            "/".join(sorted({m.energy_how for m in group.points.values() if m.energy_how})) if own and group else None
        )
    how = constants.hows[key.family]
    energy = {b: own.get(b, k * cores * ms / 1000.0 / (b * key.layout.replicas)) for b, ms in times.items()}
    if own and len(own) == len(energy):
        return energy, how
    return energy, f"{how}; scaled to this layout and batch by busy cores x time"


def _energy(group: ConfigPoints, constants, device_cores) -> tuple[dict[int, float], str | None]:
    """J per sample by measured batch: metered where the point metered it, else scaled (see above)."""
    return _energy_for_times(group.key, group.service_ms(), constants, device_cores, group)
