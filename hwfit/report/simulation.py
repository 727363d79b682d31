"""The page `hwfit simulate --report` writes: the simulated server over time (rates, latency,
utilization and queue), the per-pool table and where every figure came from. One self-contained page."""

from __future__ import annotations

from hwfit.forecast import PlanSimulation
from hwfit.report.html import standalone_page
from hwfit.report.svg import Chart, Point, Series, color, render_chart
from hwfit.report.text import esc, how_badge, number, percent


def simulation_page(sim: PlanSimulation, plan_label: str) -> str:
    result = sim.result
    bins = result.timeline
    width = bins[1].start_s - bins[0].start_s if len(bins) > 1 else max(result.window_s, 1e-9)

    def series(name: str, values: list[float | None], index: int, dashed: bool = False) -> Series:
        points = tuple(
            Point(b.start_s - bins[0].start_s, v, f"{name} at {b.start_s:.0f} s: {number(v)}")
            for b, v in zip(bins, values)
            if v is not None
        )
        return Series(name, points, color(index), dashed=dashed, marker_size=2.5)

    rates = Chart(
        "sim-rates",
        "Requests per second over time (simulated)",
        "seconds",
        "requests/s",
        (
            series("offered", [b.offered / width for b in bins], 0),
            series("answered", [b.answered / width for b in bins], 1),
            series("refused", [b.refused / width for b in bins], 3, dashed=True),
        ),
    )
    latency = Chart(
        "sim-latency",
        "Latency of the requests arriving in each interval (simulated)",
        "seconds",
        "ms",
        (series("p50", [b.p50_ms for b in bins], 0), series("p99", [b.p99_ms for b in bins], 3)),
    )
    busy = Chart(
        "sim-busy",
        "Replicas' busy share and the queue arrivals found (simulated)",
        "seconds",
        "busy share / queued samples ÷ 100",
        (
            series("utilization", [b.utilization for b in bins], 2),
            series("queue ÷ 100", [b.queue_samples / 100.0 for b in bins], 4, dashed=True),
        ),
    )
    rows = "".join(
        f"<tr><td>{esc(p.name)}</td><td>{esc(p.role)}</td><td>{p.answered}</td><td>{number(p.p50_ms)}</td>"
        f"<td>{number(p.p99_ms)}</td><td>{number(p.mean_batch_size)}</td><td>{percent(p.utilization)}</td>"
        f"<td>{number(p.mean_queue_samples)} / {p.max_queue_samples}</td></tr>"
        for p in result.pools
    )
    sources = "".join(
        f"<li><b>{esc(s.pool)}</b>: jitter {esc(s.jitter)}; energy {esc(s.energy)}; cost {esc(s.cost)}</li>"
        for s in sim.sources
    )
    title = f"hwfit simulate — {plan_label} under {sim.traffic.spec}"
    summary = (
        f"{how_badge('simulated')} "
        f"offered {result.offered_rps:.4g} req/s, answered {result.answered_rps:.4g} req/s, refused "
        f"{result.refused} ({percent(result.refused_share)}: {esc(result.refused_reasons or 'none')}); "
        f"p50 {number(result.p50_ms)} ms, p99 {number(result.p99_ms)} ms, max {number(result.max_ms)} ms; "
        f"{sim.duration_s:.4g} s simulated, first {sim.warmup_s:.3g} s left out, seed {sim.seed}."
    )
    return standalone_page(
        title,
        [
            f"<section><h2>Summary</h2><p>{summary}</p></section>",
            f"<section><h2>Over time</h2>{render_chart(rates)}{render_chart(latency)}{render_chart(busy)}</section>",
            "<section><h2>Pools</h2><table><tr><th>pool</th><th>role</th><th>answered</th><th>p50 ms</th>"
            f"<th>p99 ms</th><th>mean batch</th><th>busy</th><th>queue mean / max</th></tr>{rows}</table>"
            f"<ul>{sources}</ul></section>",
        ],
        "Every figure on this page is simulated from the plan's measured service-time curves.",
    )
