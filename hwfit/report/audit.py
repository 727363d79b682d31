"""The page `hwfit audit --report` writes: each device's waterfall (bars, shares of the purchased total,
how each step was obtained), its busy share over the window, the per-process and per-pool tables and
the advice. One self-contained page."""

from __future__ import annotations

from hwfit.audit import AuditResult
from hwfit.core import format_si
from hwfit.report.html import standalone_page
from hwfit.report.svg import Bar, BarChart, Chart, Point, Series, color, render_bar_chart, render_chart
from hwfit.report.text import esc, how_badge, number, percent


def audit_page(result: AuditResult) -> str:
    obs = result.observation
    sections = []
    for index, waterfall in enumerate(result.waterfalls):
        bars = tuple(
            Bar(
                step.name,
                step.share * 100.0,
                color(i),
                tip=f"{step.name}: {format_si(step.flops, 'FLOP')} ({step.how}) — {step.source}",
                note=step.how,
            )
            for i, step in enumerate(waterfall.steps)
        )
        chart = BarChart(
            f"audit-waterfall-{index}",
            f"{waterfall.device}: where the purchased {waterfall.precision} FLOPs went ({waterfall.window_s:.0f} s)",
            "% of purchased",
            bars,
        )
        rows = "".join(
            f"<tr><td>{esc(step.name)}</td><td>{esc(format_si(step.flops, 'FLOP'))}</td><td>{percent(step.share)}</td>"
            f"<td>{'' if step.usd is None else f'{step.usd:.4f}'}</td><td>{how_badge(step.how)}</td>"
            f"<td>{esc(step.source)}</td></tr>"
            for step in waterfall.steps
        )
        line = obs.series.get(waterfall.device)
        over_time = ""
        if line is not None and line.points:
            series = Series(
                "busy share",
                tuple(Point(t, v, f"{t:.0f} s: {percent(v)} busy") for t, v in line.points),
                color(0),
                marker_size=2.0,
            )
            over_time = render_chart(
                Chart(
                    f"audit-busy-{index}",
                    f"{waterfall.device}: busy share over the window",
                    "seconds",
                    "busy",
                    (series,),
                )
            )
        notes = "".join(f"<li>{esc(note)}</li>" for note in waterfall.notes)
        sections.append(
            f"<section><h2>{esc(waterfall.device)}</h2>{render_bar_chart(chart)}"
            "<table><tr><th>step</th><th>FLOPs</th><th>share</th><th>USD</th><th>how</th><th>obtained from</th></tr>"
            f"{rows}</table>{over_time}<ul>{notes}</ul></section>"
        )
    processes = "".join(
        f"<tr><td>{p.pid}</td><td>{esc(p.name)}</td><td>{p.parent or ''}</td><td>{p.cpu_s:.2f}</td>"
        f"<td>{number(p.run_queue_wait_s)}</td><td>{p.peak_rss_bytes / 2**20:.0f}</td>"
        f"<td>{'yes' if p.exited else ''}</td></tr>"
        for p in obs.processes
    )
    pools = "".join(
        f"<tr><td>{esc(p.window.pool.model)}</td><td>{esc(p.window.pool.variant_key)}</td><td>{p.window.pool.replicas}</td>"
        f"<td>{p.window.samples:.0f}</td><td>{number(p.window.mean_batch)}</td>"
        f"<td>{esc(format_si(p.flops_per_sample, 'FLOP'))}</td></tr>"
        for p in result.pools
    )
    advice = "".join(
        f"<li><b>{esc(a.action)}</b> — {esc(a.evidence)}; expected: {esc(a.gain)}</li>" for a in result.advice
    )
    title = f"hwfit audit — {obs.started_at}, {obs.window_s:.0f} s"
    return standalone_page(
        title,
        [
            f"<section><h2>Window</h2><p>ended because {esc(obs.ended_because)}</p></section>",
            *sections,
            f"<section><h2>Advice</h2><ul>{advice or '<li>nothing the measurements support</li>'}</ul></section>",
            "<section><h2>Processes</h2><table><tr><th>pid</th><th>name</th><th>parent</th><th>CPU s</th>"
            f"<th>run-queue wait s</th><th>peak RSS MiB</th><th>exited</th></tr>{processes}</table></section>",
            "<section><h2>Served pools</h2><table><tr><th>model</th><th>variant</th><th>replicas</th><th>samples</th>"
            f"<th>mean batch</th><th>FLOPs/sample</th></tr>{pools}</table></section>",
        ],
        "Each step says how it was obtained; the steps add up to the purchased total.",
    )
