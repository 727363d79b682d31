"""What one configuration would do at the SLO's rate: batching, p99, capacity, energy, cost, and
which constraints it breaks.

Serving latency is not batch latency. With a dynamic batcher in front of c replicas, a request's
latency at rate λ is queueing + batch formation + service time; `choose` scores every (max batch
B, max queue delay d) with the closed-form approximation of `simulate.approximate_pool`
(microseconds each) and `confirm` re-checks the pick with the discrete-event simulation. Both
add the measured service jitter (p99 − mean of the batch latency at B) on top, because the
queueing model takes service times as deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from hwfit.core import OBJECTIVE_METRICS, Config, to_minimise
from hwfit.plan.slo import Slo
from hwfit.simulate import ServiceCurve, approximate_pool, capacity_rps, simulate_pool

QUEUE_DELAYS_MS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0)
JOULES_PER_KWH = 3.6e6
SIMULATED_OPTIONS = 4  # batching options a confirmation simulates at most
CAPACITY_TIE = 0.01  # throughput objective: capacities this close count as equal (see _pick)
EXTRA_UNITS = 2  # besides the fewest units that carry the load, how many more to consider

CONSTRAINTS = (
    "max_accuracy_loss",
    "throughput_rps",
    "peak_rps",
    "latency_p99_ms",
    "max_energy_j_per_inference",
    "max_cost_per_million",
)


@dataclass(frozen=True)
class DeviceOffer:
    """One kind of device the plan may use: how many units, what one costs, how many cores (CPUs)."""

    name: str
    count: int
    price_per_hour: float | None = None
    price_how: str = "unknown"
    cores: int | None = None  # CPU: cores per unit, and pools are charged for the cores they take

    def hourly_cost(self, key: Config, units: int) -> float | None:
        if self.price_per_hour is None:
            return None
        cores = key.layout.cores(self.cores)
        share = cores / self.cores if cores and self.cores else 1.0
        return units * self.price_per_hour * share


@dataclass
class ConfigData:
    """What the evaluator needs of one configuration: its curve and per-batch facts."""

    key: Config
    service_ms: dict[int, float]  # batch -> mean ms per batch (measured, or estimated where `estimated`)
    accuracy_loss: float | None
    energy_j: dict[int, float] = field(default_factory=dict)  # batch -> J per sample
    energy_how: str | None = None
    jitter_ms: Callable[[int], float] = lambda batch: 0.0
    estimated: frozenset[int] = frozenset()  # batch sizes whose time is an estimate, not a measurement
    measured_from: list[str] = field(default_factory=list)
    bounded: frozenset[int] = frozenset()  # unmeasured batch sizes given the next measured one's time

    def bounded_under(self, max_batch: int) -> tuple[int, ...]:
        return tuple(sorted(b for b in self.bounded if b <= max_batch))

    @property
    def curve(self) -> ServiceCurve:
        return ServiceCurve.from_points(self.service_ms)

    def energy_at(self, batch: float) -> float | None:
        """J per sample at a (mean) batch size: interpolated between measured batch sizes; below the
        smallest, that batch's J per sample carried by the time per sample (energy is busy time: a
        batch of 3 on a curve measured at 16 alone, as long as batch 16, costs 16/3 of its J per
        sample, not the same); above the largest, the largest's."""
        if not self.energy_j:
            return None
        points = sorted(self.energy_j.items())
        smallest, joules = points[0]
        if batch < smallest:
            curve = self.curve
            return joules * (curve(batch) / batch) / (curve(smallest) / smallest)
        for (b0, j0), (b1, j1) in zip(points, points[1:]):
            if batch <= b1:
                return j0 + (j1 - j0) * (batch - b0) / (b1 - b0)
        return points[-1][1]


@dataclass
class Evaluation:
    """One configuration on `units` units of its device, at the SLO's sustained rate."""

    key: Config
    units: int
    max_batch: int
    max_queue_delay_ms: float
    rate_rps: float
    p50_ms: float | None
    p99_ms: float
    p99_how: str
    capacity_rps: float
    mean_batch: float
    accuracy_loss: float | None
    j_per_inference: float | None
    energy_how: str | None
    cost_per_hour: float | None
    cost_per_million: float | None
    broke: dict[str, str] = field(default_factory=dict)  # constraint -> why
    estimated: bool = False  # rests on estimated (unmeasured) service times
    measured_from: list[str] = field(default_factory=list)
    p99_bounded: tuple[int, ...] = ()  # batch sizes up to B not measured, taken as the next measured's time

    @property
    def p99_bound_note(self) -> str:
        """Where the p99 rests on unmeasured batch sizes: that it is an upper bound, and which they are."""
        if not self.p99_bounded:
            return ""
        sizes = ", ".join(str(b) for b in self.p99_bounded)
        return f"an upper bound: batch {sizes} not measured, each taken as long as the next measured one"

    @property
    def replicas(self) -> int:
        return self.units * self.key.layout.replicas

    @property
    def feasible(self) -> bool:
        return not self.broke

    @property
    def utilization(self) -> float:
        return self.rate_rps / self.capacity_rps if self.capacity_rps else math.inf

    @property
    def label(self) -> str:
        units = f" on {self.units} {self.key.family.device}" if self.units > 1 else ""
        return f"{self.key.label}{units}"

    def objective_value(self, objective: str) -> float:
        """The objective as a number to minimise (throughput negated); inf when unknown."""
        metric = OBJECTIVE_METRICS[objective]
        return to_minimise(metric, getattr(self, metric))

    def rank(self, objective: str) -> tuple:
        """Sort key: feasible first, then the objective, then cost, p99, energy, fewer replicas."""
        tie = (
            self.cost_per_million if self.cost_per_million is not None else math.inf,
            self.p99_ms,
            self.j_per_inference if self.j_per_inference is not None else math.inf,
            self.replicas,
        )
        return (len(self.broke), self.objective_value(objective), *tie, self.key.label)


def evaluate(
    data: ConfigData,
    slo: Slo,
    offer: DeviceOffer,
    default_accuracy_loss: float | None = None,
    rate_rps: float | None = None,
    p99_optimism: float = 1.0,
) -> list[Evaluation]:
    """The configuration on 1..count units of its device (the fewest that carry the load, and a
    few more), each with its best batching at the sustained rate. `p99_optimism` < 1 scales the
    approximate p99 down, for a search that must not rule a configuration out on the
    approximation's error (see search.py)."""
    rate = slo.throughput_rps if rate_rps is None else rate_rps
    curve = data.curve
    batches = sorted(data.service_ms)
    per_unit = max(capacity_rps(curve, data.key.layout.replicas, b) for b in batches)
    fewest = max(1, math.ceil(rate / (slo.headroom * per_unit)))
    units_options = range(min(fewest, offer.count), min(offer.count, fewest + EXTRA_UNITS) + 1)
    return [
        _evaluate_units(data, curve, batches, units, slo, offer, default_accuracy_loss, rate, p99_optimism)
        for units in units_options
    ]


def _evaluate_units(data, curve, batches, units, slo, offer, default_accuracy_loss, rate, optimism) -> Evaluation:
    replicas = units * data.key.layout.replicas
    needed = [rate / slo.headroom] + ([slo.peak_rps] if slo.peak_rps else [])
    carrying = [b for b in batches if capacity_rps(curve, replicas, b) >= max(needed)]
    options = [
        (row[0] * optimism, *row[1:])
        for row in _score(curve, replicas, carrying or _most(curve, replicas, batches), rate, data)
    ]
    p99, batch, delay, capacity, mean_batch = _pick(options, slo)
    return _judged(
        data,
        units,
        offer,
        slo,
        default_accuracy_loss,
        max_batch=batch,
        max_queue_delay_ms=delay,
        rate_rps=rate,
        p50_ms=None,
        p99_ms=p99,
        p99_how="approximation",
        capacity_rps=capacity,
        mean_batch=mean_batch,
        estimated=bool(data.estimated & set(b for b in batches if b <= batch)),
    )


def _score(curve: ServiceCurve, replicas: int, batches: list[int], rate: float, data: ConfigData) -> list[tuple]:
    """(p99 ms, B, d ms, capacity, mean batch) per option, by the approximation plus jitter."""
    rows = []
    for batch in batches:
        capacity = capacity_rps(curve, replicas, batch)
        for delay in (0.0,) if batch == 1 else QUEUE_DELAYS_MS:
            stats = approximate_pool(curve, replicas, batch, delay, rate)
            p99 = stats.p99_ms + data.jitter_ms(batch) if stats.stable else math.inf
            rows.append((p99, batch, delay, capacity, stats.mean_batch_size))
    return rows


def _pick(options: list[tuple], slo: Slo) -> tuple:
    """Among the options meeting the p99 target: the largest mean batch for energy, the largest
    capacity for throughput, else the lowest p99; when none meets it, the lowest p99."""
    meeting = [row for row in options if row[0] <= slo.latency_p99_ms]
    if not meeting:
        return min(options, key=lambda row: (row[0], row[1], row[2]))
    if slo.objective == "energy":
        return max(meeting, key=lambda row: (row[4], -row[0]))
    if slo.objective == "throughput":
        # within CAPACITY_TIE of the most, the larger batch: capacities that close are one measurement's
        # noise apart, and the server's own cost per batch (IPC, its event loop; ~2 ms a batch when the
        # replicas fill every core) is shared by more requests — served at max batch 2 rather than 1,
        # a 2-replica plan on 2 cores answered 124.5/131.8 req/s against 118.1/121.0 (raw capacities 137.0
        # and 137.2)
        most = max(row[3] for row in meeting)
        return max((row for row in meeting if row[3] >= most * (1.0 - CAPACITY_TIE)), key=lambda row: (row[1], -row[0]))
    # the lowest p99, or (within 2% of it) the smallest batch and delay: at a low rate batches
    # never fill, so a larger B buys nothing and rests on less relevant measurements
    lowest = min(row[0] for row in meeting)
    return min((row for row in meeting if row[0] <= lowest * 1.02), key=lambda row: (row[1], row[2], row[0]))


def _fill_energy_and_cost(evaluation: Evaluation, data: ConfigData, slo: Slo) -> None:
    evaluation.j_per_inference = data.energy_at(evaluation.mean_batch)
    if evaluation.cost_per_hour is None:
        return
    hardware = evaluation.cost_per_hour / (evaluation.rate_rps * 3600.0) * 1e6
    energy = (evaluation.j_per_inference or 0.0) * 1e6 / JOULES_PER_KWH * slo.price_per_kwh
    evaluation.cost_per_million = hardware + energy


def judge(evaluation: Evaluation, slo: Slo, default_accuracy_loss: float | None) -> None:
    """Fill `broke` with every constraint the evaluation breaks and why."""
    broke = evaluation.broke
    broke.clear()
    limit = slo.max_accuracy_loss if slo.max_accuracy_loss is not None else default_accuracy_loss
    loss = evaluation.accuracy_loss
    if limit is not None and loss is not None and loss > limit:
        origin = (
            ""
            if slo.max_accuracy_loss is not None
            else " (hwfit's default tolerance; set max_accuracy_loss to change it)"
        )
        broke["max_accuracy_loss"] = f"accuracy loss {loss:.4f} > {limit:g}{origin}"
    if evaluation.capacity_rps * slo.headroom < evaluation.rate_rps:
        broke["throughput_rps"] = (
            f"carries {evaluation.capacity_rps * slo.headroom:.4g} req/s at "
            f"{slo.headroom:.0%} busy on {evaluation.replicas} replica(s), "
            f"below {evaluation.rate_rps:g}"
        )
    if slo.peak_rps and evaluation.capacity_rps < slo.peak_rps:
        broke["peak_rps"] = f"capacity {evaluation.capacity_rps:.4g} req/s < peak {slo.peak_rps:g}"
    if evaluation.p99_ms > slo.latency_p99_ms:
        how = "; ".join(filter(None, [evaluation.p99_how, evaluation.p99_bound_note]))
        shown = "overloaded" if math.isinf(evaluation.p99_ms) else f"{evaluation.p99_ms:.3g} ms ({how})"
        broke["latency_p99_ms"] = f"p99 {shown} > {slo.latency_p99_ms:g} ms"
    if slo.max_energy_j_per_inference is not None:
        if evaluation.j_per_inference is None:
            broke["max_energy_j_per_inference"] = (
                "energy per inference unknown (no energy figure for this configuration)"
            )
        elif evaluation.j_per_inference > slo.max_energy_j_per_inference:
            broke["max_energy_j_per_inference"] = (
                f"{evaluation.j_per_inference:.3g} J/inference > {slo.max_energy_j_per_inference:g}"
            )
    if slo.max_cost_per_million is not None:
        if evaluation.cost_per_million is None:
            broke["max_cost_per_million"] = "cost unknown (no price for this device)"
        elif evaluation.cost_per_million > slo.max_cost_per_million:
            broke["max_cost_per_million"] = f"${evaluation.cost_per_million:.3g}/M > ${slo.max_cost_per_million:g}/M"


def confirm(
    evaluation: Evaluation, data: ConfigData, slo: Slo, default_accuracy_loss: float | None, seed: int = 0
) -> Evaluation:
    """Re-check the chosen batching with the discrete-event simulation (and the jitter); if it
    misses the target, simulate the other options that carry the load, best estimate first."""
    curve = data.curve
    replicas = evaluation.replicas
    if evaluation.capacity_rps <= evaluation.rate_rps:
        return evaluation
    tried = []
    options = sorted(
        _score(curve, replicas, _carrying(data, curve, replicas, slo, evaluation), evaluation.rate_rps, data)
    )
    first = (evaluation.max_batch, evaluation.max_queue_delay_ms)
    ordered = [first] + [(row[1], row[2]) for row in options if (row[1], row[2]) != first]
    # the latency objective simulates the few best estimates and keeps the lowest p99; the others
    # keep the first option (in the order preferred) that the simulation says meets the target
    for batch, delay in ordered[:SIMULATED_OPTIONS]:
        stats = simulate_pool(curve, replicas, batch, delay, evaluation.rate_rps, seed=seed)
        p99 = stats.p99_ms + data.jitter_ms(batch)
        tried.append((p99, batch, delay, stats))
        if p99 <= slo.latency_p99_ms and slo.objective != "latency":
            break
    meeting = [t for t in tried if t[0] <= slo.latency_p99_ms]
    if slo.objective == "latency" or not meeting:
        p99, batch, delay, stats = min(tried, key=lambda t: (t[0], t[1]))
    else:
        p99, batch, delay, stats = meeting[0]
    evaluation.max_batch, evaluation.max_queue_delay_ms = batch, delay
    evaluation.p99_ms, evaluation.p50_ms = p99, stats.p50_ms
    evaluation.p99_how, evaluation.p99_bounded = "simulation", data.bounded_under(batch)
    evaluation.capacity_rps = capacity_rps(curve, replicas, batch)
    evaluation.mean_batch = stats.mean_batch_size
    _fill_energy_and_cost(evaluation, data, slo)
    judge(evaluation, slo, default_accuracy_loss)
    return evaluation


def evaluate_at(
    data: ConfigData,
    slo: Slo,
    offer: DeviceOffer,
    units: int,
    max_batch: int,
    max_queue_delay_ms: float,
    default_accuracy_loss: float | None = None,
    rate_rps: float | None = None,
    seed: int = 0,
) -> Evaluation:
    """One batching of a configuration (B, d on `units` units) simulated on `data`'s curve: what a plan
    that chose it would do, judged on these measurements rather than on those it was planned from."""
    rate = slo.throughput_rps if rate_rps is None else rate_rps
    curve = data.curve
    replicas = units * data.key.layout.replicas
    capacity = capacity_rps(curve, replicas, max_batch)
    p50, p99, mean_batch = None, math.inf, float(max_batch)
    if capacity > rate:
        stats = simulate_pool(curve, replicas, max_batch, max_queue_delay_ms, rate, seed=seed)
        p50, p99, mean_batch = stats.p50_ms, stats.p99_ms + data.jitter_ms(max_batch), stats.mean_batch_size
    return _judged(
        data,
        units,
        offer,
        slo,
        default_accuracy_loss,
        max_batch=max_batch,
        max_queue_delay_ms=max_queue_delay_ms,
        rate_rps=rate,
        p50_ms=p50,
        p99_ms=p99,
        p99_how="simulation",
        capacity_rps=capacity,
        mean_batch=mean_batch,
    )


def _judged(data: ConfigData, units: int, offer, slo: Slo, default_accuracy_loss, **figures) -> Evaluation:
    """An Evaluation of `data`'s configuration on `units` units with the serving `figures` given (batching,
    latency, capacity), its accuracy, energy and cost filled from `data` and `offer`, judged against `slo`."""
    evaluation = Evaluation(
        key=data.key,
        units=units,
        accuracy_loss=data.accuracy_loss,
        j_per_inference=None,
        energy_how=data.energy_how,
        cost_per_hour=offer.hourly_cost(data.key, units),
        cost_per_million=None,
        measured_from=list(data.measured_from),
        **figures,
    )
    evaluation.p99_bounded = data.bounded_under(evaluation.max_batch)
    _fill_energy_and_cost(evaluation, data, slo)
    judge(evaluation, slo, default_accuracy_loss)
    return evaluation


def _carrying(data: ConfigData, curve: ServiceCurve, replicas: int, slo: Slo, evaluation: Evaluation) -> list[int]:
    needed = max([evaluation.rate_rps / slo.headroom] + ([slo.peak_rps] if slo.peak_rps else []))
    batches = sorted(data.service_ms)
    return [b for b in batches if capacity_rps(curve, replicas, b) >= needed] or _most(curve, replicas, batches)


def _most(curve: ServiceCurve, replicas: int, batches: list[int]) -> list[int]:
    """When no batch size carries the load: the one that carries the most (the largest of equals), so
    that an infeasible plan's "most reachable" is the configuration's best, not its largest batch's."""
    return [max(batches, key=lambda b: (capacity_rps(curve, replicas, b), b))]


def relaxed(constraint: str) -> set[str]:
    """The constraints a configuration may break when `constraint` is relaxed: breaking throughput
    drags latency with it (an overloaded queue has no finite p99)."""
    return {constraint, "latency_p99_ms", "peak_rps"} if constraint == "throughput_rps" else {constraint}


def culprits(evaluations: list[Evaluation]) -> list[str]:
    """Of an SLO no configuration meets: the constraints that, relaxed alone, would let some
    configuration through; else those the nearest configuration (fewest broken) breaks."""
    if not evaluations:
        return []
    alone = [c for c in CONSTRAINTS if any(c in e.broke and set(e.broke) <= relaxed(c) for e in evaluations)]
    if "latency_p99_ms" in alone:
        # a configuration that carries the rate and the peak and breaks the p99 alone: the rate is
        # reachable, and the p99 is to blame, not the rate (that relaxing the rate also lets the
        # overloaded configurations through says nothing: their p99 goes with it). Blamed, the rate
        # had the plan say "40400 req/s is not reachable; the most is 134962 req/s"
        alone = [c for c in alone if c not in ("throughput_rps", "peak_rps")]
    if alone:
        return alone
    fewest = min(evaluations, key=lambda e: len(e.broke))
    return [c for c in CONSTRAINTS if c in fewest.broke]
