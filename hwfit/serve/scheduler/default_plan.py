"""The plan `hwfit serve MODEL` uses when given a model instead of a plan: the model on ONNX Runtime fp32
on the CPU, in the layout (replicas x threads) and with the max batch that serve the most requests
within the default deadline, found by a short search at start-up, within a budget of seconds.

The search measures, in this process, every layout that fills the machine's cores (1 x all cores, ...,
all cores x 1 thread), each layout's replicas running their batches at the same time (ONNX Runtime
releases the GIL, so they share the cores as the worker processes will), at batch sizes 1, 2, 4, ...
until throughput stops growing, a batch would take too large a share of the deadline, or the budget
is spent. Each (layout, max batch) is scored by its measured capacity, kept only if the queueing
approximation puts its p99 at 70% of that capacity within the deadline; the highest capacity wins,
and among those within 3% of it the one with the fastest single request (then the smaller batch).
A model too slow to measure at two batch sizes within the budget gets a safe layout instead — one
replica on every core, max batch 1 — and the start-up line says so.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from hwfit.backends import load_variant
from hwfit.core import HwfitError, Variant, usable_threads
from hwfit.models import Model
from hwfit.plan import Plan, parse_plan
from hwfit.serve.scheduler.batcher import batchable
from hwfit.simulate import approximate_p99_ms

DEFAULT_STARTUP_BUDGET_S = 6.0
DEFAULT_QUEUE_DELAY_MS = 2.0
DEFAULT_LATENCY_P99_MS = 1000.0  # requests without a timeout are admitted if predicted within this
BATCH_SIZES = (1, 2, 4, 8, 16, 32)
TIMED_RUNS = 3  # per replica and batch size, after one warm-up run
HEADROOM = 0.7  # the p99 of a candidate is judged at this share of its capacity
NEAR_BEST = 0.97  # candidates within 3% of the best capacity: fastest single request, then largest max batch
PLATEAU_GAIN = 1.03  # a larger batch that does not add 3% of throughput, twice running, ends a layout
BATCH_SHARE_OF_DEADLINE = 0.25  # a full batch may take at most this share of the deadline
SAFE_DEADLINE_MULTIPLE = 4.0  # a model slower than the default deadline allows gets this x its batch-1 time


@dataclass(frozen=True)
class Layout:
    """K replicas x t threads each on the CPU."""

    replicas: int
    threads: int

    @property
    def text(self) -> str:
        replicas = f"{self.replicas} replica{'s' if self.replicas > 1 else ''}"
        return f"{replicas} x {self.threads} thread{'s' if self.threads > 1 else ''}"

    @property
    def short(self) -> str:
        return f"{self.replicas}x{self.threads}"


@dataclass
class LayoutTimes:
    """What the search measured on one layout: median batch time (ms) per batch size, replicas together."""

    layout: Layout
    service_ms: dict[int, float] = field(default_factory=dict)  # median: the plan's curve
    load_s: float = 0.0
    fastest_ms: dict[int, float] = field(default_factory=dict)  # the fastest run: what the ranking uses

    def capacity_rps(self, batch: int) -> float:
        """Samples/s at `batch` from its fastest run: on a machine shared with other work, the median of
        a few runs carries their interference, which would rank the layouts by it."""
        return self.layout.replicas * batch * 1000.0 / self.fastest_ms.get(batch, self.service_ms[batch])


@dataclass(frozen=True)
class Choice:
    """One (layout, max batch) the search scored."""

    layout: Layout
    max_batch: int
    capacity_rps: float
    p99_ms: float  # queueing approximation at HEADROOM x capacity
    single_ms: float  # one request alone: the layout's batch-1 time
    service_ms: dict[int, float]

    @property
    def text(self) -> str:
        return f"{self.layout.short} b{self.max_batch}: {self.capacity_rps:.0f} req/s"


@dataclass(frozen=True)
class StartupSearch:
    """The start-up search: its budget, what it measured, what it chose and why."""

    budget_s: float
    elapsed_s: float
    measured: tuple[LayoutTimes, ...]
    chosen: Choice
    ranked: tuple[Choice, ...]  # every feasible choice, best first
    deadline_ms: float
    fallback: str | None = None  # why the safe layout was taken instead of a searched one
    skipped: tuple[str, ...] = ()  # layouts the budget left unmeasured

    @property
    def points(self) -> int:
        return sum(len(times.service_ms) for times in self.measured)


@dataclass(frozen=True)
class DefaultPlan:
    plan: Plan
    description: str  # the start-up line: what was chosen and why
    search: StartupSearch


def candidate_layouts(cores: int) -> list[Layout]:
    """The layouts that fill `cores`: 1 x cores first (one replica, every core), then cores x 1, then the
    ones between (replica counts that divide the cores, powers of two up to 8)."""
    layouts = [Layout(1, cores)]
    if cores > 1:
        layouts.append(Layout(cores, 1))
    for replicas in (2, 4, 8):
        if 1 < replicas < cores and cores % replicas == 0:
            layouts.append(Layout(replicas, cores // replicas))
    return layouts


def default_plan(
    model: Model, budget_s: float = DEFAULT_STARTUP_BUDGET_S, on_progress: Callable[[str], None] | None = None
) -> DefaultPlan:
    """Search the layout and max batch for `model` within `budget_s` seconds, and make the plan."""
    if not math.isfinite(budget_s) or budget_s < 0:
        raise HwfitError(f"the start-up budget must be a number of seconds >= 0, got {budget_s!r}")
    search = search_layout(model, budget_s, on_progress=on_progress)
    plan = _plan(model, search)
    return DefaultPlan(plan, describe(search), search)


def search_layout(
    model: Model,
    budget_s: float,
    cores: int | None = None,
    clock: Callable[[], float] = time.perf_counter,
    on_progress: Callable[[str], None] | None = None,
) -> StartupSearch:
    """Measure layouts and batch sizes until the budget is spent; choose. Batch 1 on the first layout is
    always measured (nothing can be served without it), even past the budget."""
    started = clock()
    ends = started + budget_s
    cores = cores or usable_threads()
    batches = BATCH_SIZES if batchable(model.inputs) else (1,)
    measured: list[LayoutTimes] = []
    skipped: list[str] = []
    layouts = candidate_layouts(cores)
    for index, layout in enumerate(layouts):
        if measured and not _can_afford(measured, layout, ends - clock()):
            skipped.append(layout.text)
            continue
        if on_progress is not None:
            on_progress(f"measuring {layout.text}")
        # each layout may spend its share of the budget and what the ones before it left over
        share_ends = started + budget_s * (index + 1) / len(layouts)
        times = _measure_layout(model, layout, batches, share_ends, clock, first=not measured)
        if times.service_ms:
            measured.append(times)
        else:
            skipped.append(layout.text)
    elapsed_s = clock() - started
    return _choose(measured, batches, budget_s, elapsed_s, tuple(skipped))


def _can_afford(measured: list[LayoutTimes], layout: Layout, left_s: float) -> bool:
    """Whether loading `layout` and timing its batch 1 fits in what is left (from the first layout's cost)."""
    first = measured[0]
    run_s = first.service_ms[1] / 1000.0 * first.layout.threads / layout.threads  # one thread per replica is slower
    return layout.replicas * first.load_s + (1 + TIMED_RUNS) * run_s <= left_s


def _measure_layout(
    model: Model, layout: Layout, batches: tuple[int, ...], ends: float, clock: Callable[[], float], first: bool
) -> LayoutTimes:
    times = LayoutTimes(layout)
    loading = clock()
    variant = Variant("ort", "cpu", "fp32", max(batches), layout.threads)
    runners = [load_variant(model, variant) for _ in range(layout.replicas)]
    times.load_s = (clock() - loading) / layout.replicas
    try:
        with ThreadPoolExecutor(max_workers=layout.replicas) as pool:
            best_rps, flat = 0.0, 0
            for batch in batches:
                if times.service_ms and clock() + _step_s(times, batch) > ends:
                    break
                if not times.service_ms and not first and clock() > ends:
                    break
                times.service_ms[batch], times.fastest_ms[batch] = _time_batch(
                    pool, runners, model.synthetic_inputs(batch)
                )
                rps = times.capacity_rps(batch)
                flat = flat + 1 if rps < best_rps * PLATEAU_GAIN else 0
                best_rps = max(best_rps, rps)
                if flat >= 2 or times.service_ms[batch] > DEFAULT_LATENCY_P99_MS * BATCH_SHARE_OF_DEADLINE:
                    break
    finally:
        for runner in runners:
            runner.close()
    return times


def _step_s(times: LayoutTimes, batch: int) -> float:
    """The predicted seconds to time `batch`: the largest batch so far, scaled linearly (an upper bound
    on CPUs, where a batch never costs more than proportionally), for the warm-up and timed runs."""
    largest = max(times.service_ms)
    return (1 + TIMED_RUNS) * times.service_ms[largest] / 1000.0 * batch / largest


def _time_batch(pool: ThreadPoolExecutor, runners: list, inputs: dict) -> tuple[float, float]:
    """Median and fastest ms of one batch with every replica running at once (each warmed up once first)."""

    def run(runner) -> list[float]:
        runner.run_unchecked(inputs)
        spent = []
        for _ in range(TIMED_RUNS):
            started = time.perf_counter()
            runner.run_unchecked(inputs)
            spent.append((time.perf_counter() - started) * 1000.0)
        return spent

    every = [ms for spent in pool.map(run, runners) for ms in spent]
    return round(statistics.median(every), 3), round(min(every), 3)


def _choose(
    measured: list[LayoutTimes], batches: tuple[int, ...], budget_s: float, elapsed_s: float, skipped: tuple[str, ...]
) -> StartupSearch:
    points = sum(len(times.service_ms) for times in measured)
    if len(batches) > 1 and points < 2:
        spent = measured[0].load_s + (1 + TIMED_RUNS) * measured[0].service_ms[1] / 1000.0
        why = (
            f"the model is too slow to search within the {budget_s:g} s start-up budget (loading it and timing "
            f"batch 1 took {spent:.1f} s; the search needs two batch sizes at least)"
        )
        return _fallback(measured, budget_s, elapsed_s, skipped, why)
    ranked = _ranked(measured)
    if not ranked:
        single = measured[0].service_ms[1]
        why = (
            f"no batch size serves within the default {DEFAULT_LATENCY_P99_MS:g} ms deadline "
            f"(one request alone takes {single:.0f} ms)"
        )
        return _fallback(measured, budget_s, elapsed_s, skipped, why)
    return StartupSearch(
        budget_s, elapsed_s, tuple(measured), ranked[0], tuple(ranked), DEFAULT_LATENCY_P99_MS, None, skipped
    )


def _ranked(measured: list[LayoutTimes]) -> list[Choice]:
    choices = []
    for times in measured:
        single = times.fastest_ms.get(min(times.service_ms), times.service_ms[min(times.service_ms)])
        for batch in sorted(times.service_ms):
            if times.service_ms[batch] > DEFAULT_LATENCY_P99_MS * BATCH_SHARE_OF_DEADLINE:
                continue
            curve = {b: ms for b, ms in times.service_ms.items() if b <= batch}
            capacity = times.capacity_rps(batch)
            p99 = approximate_p99_ms(curve, times.layout.replicas, batch, DEFAULT_QUEUE_DELAY_MS, HEADROOM * capacity)
            if p99 <= DEFAULT_LATENCY_P99_MS:
                choices.append(Choice(times.layout, batch, capacity, p99, single, curve))
    if not choices:
        return []
    best = max(choice.capacity_rps for choice in choices)
    # Within 3% of the best: the layout that answers one request fastest, then its largest max batch. A
    # larger max batch costs nothing at low load (the batcher sends what is queued; a lone request goes at
    # once) and its p99 was checked above; on a plateau measured at the model's default input size it is
    # where smaller real requests still gain (MiniLM at 32 tokens: 2x1 b8 584 vs b2 488 samples/s).
    near = sorted((c for c in choices if c.capacity_rps >= NEAR_BEST * best), key=lambda c: (c.single_ms, -c.max_batch))
    rest = sorted((c for c in choices if c.capacity_rps < NEAR_BEST * best), key=lambda c: -c.capacity_rps)
    return near + rest


def _fallback(
    measured: list[LayoutTimes], budget_s: float, elapsed_s: float, skipped: tuple[str, ...], why: str
) -> StartupSearch:
    """The safe layout: one replica on every core (the first layout measured), max batch 1, and a deadline
    that leaves room for the model when the default one does not."""
    first = measured[0]
    single = first.service_ms[1]
    deadline_ms = max(DEFAULT_LATENCY_P99_MS, SAFE_DEADLINE_MULTIPLE * single)
    choice = Choice(first.layout, 1, first.capacity_rps(1), single, single, {1: single})
    return StartupSearch(budget_s, elapsed_s, tuple(measured), choice, (choice,), deadline_ms, why, skipped)


def describe(search: StartupSearch) -> str:
    """The start-up line: the budget, what was measured, what was chosen and why."""
    chosen = search.chosen
    measured = (
        f"measured {search.points} point(s) on {len(search.measured)} layout(s) in {search.elapsed_s:.1f} s "
        f"(start-up budget {search.budget_s:g} s, --startup-budget-s to change)"
    )
    if search.skipped:
        measured += f"; not measured within the budget: {', '.join(search.skipped)}"
    head = (
        f"ONNX Runtime fp32 CPU, {chosen.layout.text}, max batch {chosen.max_batch}, "
        f"{DEFAULT_QUEUE_DELAY_MS:g} ms queue delay"
    )
    if search.fallback is not None:
        return (
            f"{head} — a safe layout, not a searched one: {search.fallback}; {measured}. Requests without a "
            f"timeout are admitted if predicted within {search.deadline_ms:g} ms. Raise --startup-budget-s, or "
            "run `hwfit plan` and serve its plan."
        )
    others = [c.text for c in search.ranked[1:4]]
    why = (
        f"the most requests within the default {search.deadline_ms:g} ms deadline: {chosen.capacity_rps:.0f} req/s "
        f"measured capacity (p99 ~{chosen.p99_ms:.0f} ms at {HEADROOM:.0%} of it, queueing approximation), "
        f"one request alone {chosen.single_ms:.1f} ms"
    )
    best = max(c.capacity_rps for c in search.ranked)
    if chosen.capacity_rps < best:
        why += (
            f"; the best capacity is {best:.0f} req/s, and within 3% of it the fastest single request, then "
            "the smaller batch, is taken"
        )
    return f"{head}: {why}; next: {', '.join(others) or 'none'}; {measured}."


def _plan(model: Model, search: StartupSearch) -> Plan:
    chosen = search.chosen
    layout = chosen.layout
    variant = Variant("ort", "cpu", "fp32", chosen.max_batch, layout.threads)
    rate = HEADROOM * chosen.capacity_rps
    how = (
        f"measured at start-up ({layout.replicas} replica(s) running together, median of {TIMED_RUNS} runs per "
        "batch size)"
    )
    pool = {
        "name": "cpu-ort-fp32",
        "role": "primary",
        "variant": variant.key,
        "backend": "ort",
        "device": "cpu",
        "precision": "fp32",
        "threads": layout.threads,
        "replicas_per_device": layout.replicas,
        "max_batch_size": chosen.max_batch,
        "max_queue_delay_ms": DEFAULT_QUEUE_DELAY_MS,
        "service_ms": chosen.service_ms,
        "expected": {
            "rate_rps": rate,
            "capacity_rps": chosen.capacity_rps,
            "p99_ms": chosen.p99_ms,
            "utilization": HEADROOM,
            "how": f"approximation (queueing model) from service times {how}",
        },
        "measured_from": [variant.key],
    }
    method = "start-up search (safe layout: " + search.fallback + ")" if search.fallback else "start-up search"
    return parse_plan(
        {
            "model": {"name": model.name, "source": model.source, "hash": model.content_hash},
            "slo": {
                "latency_p99_ms": search.deadline_ms,
                "throughput_rps": rate,
                "objective": "throughput",
                "devices": {"cpu": {"count": 1}},
            },
            "feasible": True,
            "pools": [pool],
            "fallback": [pool["name"]],
            "expected": pool["expected"],
            "answer": f"default plan: {model.name} on {describe(search)}",
            "assumptions": [
                "no plan was given: a start-up search for the most requests/s within the default deadline, "
                "not a search against an SLO",
                f"requests without a timeout are admitted if predicted to finish within {search.deadline_ms:g} ms",
            ],
            "search": {
                "grid_size": len(candidate_layouts(usable_threads())) * len(BATCH_SIZES),
                "measured": search.points,
                "reused": 0,
                "method": method,
            },
        },
        source="<default plan>",
    )


def measure_service_ms(model: Model, variant: Variant, batch_sizes: tuple[int, ...]) -> dict[int, float]:
    """Median run time per batch size on one runner loaded in this process (after one warm-up run)."""
    with load_variant(model, variant) as runner, ThreadPoolExecutor(max_workers=1) as pool:
        return {batch: _time_batch(pool, [runner], model.synthetic_inputs(batch))[0] for batch in batch_sizes}
