"""`hwfit simulate PLAN --traffic SPEC`: the plan's pools under a traffic shape, as `hwfit serve` runs them."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from hwfit.cli._app import app

TRAFFIC_HELP = (
    "poisson:RATE, constant:RATE, diurnal:PEAK,TROUGH,PERIOD, burst:BASE,PEAK,EVERY,FOR, steps:RATE@FOR,..., "
    "or trace:FILE.csv (e.g. the --records of `hwfit load`). Default: poisson at the plan's SLO throughput."
)


def parse_outage(text: str) -> tuple[str, float, float]:
    """POOL@START+LENGTH (seconds, or with s/m/h) -> (pool, start_s, end_s)."""
    from hwfit.core import TrafficError, parse_duration_s

    pool, at, span = text.partition("@")
    start_text, plus, length_text = span.partition("+")
    if not (pool and at and plus):
        raise typer.BadParameter(f"{text!r}: expected POOL@START+LENGTH, e.g. primary-cpu@60+30")
    try:
        start = 0.0 if start_text.strip() in ("0", "0s") else parse_duration_s(start_text, "outage START")
        return pool, start, start + parse_duration_s(length_text, "outage LENGTH")
    except TrafficError as error:
        raise typer.BadParameter(str(error)) from None


@app.command(
    epilog="Examples:\n\n"
    "  hwfit simulate plan.yaml --traffic poisson:60\n\n"
    "  hwfit simulate plan.yaml --traffic diurnal:120,10,10m --report sim.html\n\n"
    "  hwfit simulate plan.yaml --traffic burst:20,150,60,10 --outage primary-cpu-ort-fp32@30+20 --json"
)
def simulate(
    plan_file: Path = typer.Argument(..., help="A plan written by `hwfit plan`."),
    traffic: str | None = typer.Option(None, "--traffic", "-t", help=TRAFFIC_HELP),
    duration: str | None = typer.Option(
        None, "--duration", help="Simulated time (90s, 10m, 2h). Default: the shape's own (a period, two bursts)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the arrivals and the service-time jitter."),
    overhead_ms: float = typer.Option(
        0.0,
        "--overhead-ms",
        help="Per-request time outside the pools (HTTP, codec): the server's p50 at one "
        "request at a time minus the pool's s(1). Default 0: latency from arrival to the pool's answer.",
    ),
    host_cpu_ms: float = typer.Option(
        0.0, "--host-cpu-ms", help="CPU ms per request the front end and a same-machine load generator spend."
    ),
    cores: float | None = typer.Option(None, "--cores", help="Cores that host CPU competes for with the replicas."),
    degraded_share: float = typer.Option(0.0, "--degraded-share", help="Share of requests allowing the degraded tier."),
    service_stretch: float = typer.Option(
        1.0,
        "--service-stretch",
        help="Batches take this times the measured curve inside the server (wake-ups, "
        "IPC, shared cores): its /metrics compute time over the curve's at a known load.",
    ),
    outage: list[str] | None = typer.Option(None, "--outage", help="POOL@START+LENGTH: the pool is down then."),
    no_deadline: bool = typer.Option(False, "--no-deadline", help="No default deadline (the server's --timeout 0)."),
    report: Path | None = typer.Option(None, "--report", help="Also write the simulation as an HTML page here."),
    db: Path | None = typer.Option(None, "--db", help="Results database, for the measured jitter."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON only."),
) -> None:
    """Simulate `hwfit serve PLAN` under a traffic shape: each pool's dynamic batcher and replicas, the
    router by predicted completion, queue bounds and the default deadline (the SLO p99), fallback during
    outages and the degraded tier; service times from the plan's measured curves with the store's
    measured jitter. Prints p50/p99, refusals, per-pool utilization and queue, energy and cost, and the
    traffic over time."""
    from hwfit.core import parse_duration_s, parse_traffic
    from hwfit.forecast import server_host, simulate_plan
    from hwfit.plan import load_plan
    from hwfit.store import open_store

    plan = load_plan(plan_file)
    spec = traffic or f"poisson:{plan.slo.throughput_rps:g}"
    shape = parse_traffic(spec)
    seconds = parse_duration_s(duration, "--duration") if duration else None
    outages: dict[str, list[tuple[float, float]]] = {}
    for text in outage or []:
        pool, start, end = parse_outage(text)
        outages.setdefault(pool, []).append((start, end))
    host = server_host(
        plan, overhead_ms, host_cpu_ms, cores, degraded_share, None if no_deadline else -1.0, service_stretch
    )
    err = Console(stderr=True)
    with open_store(db) as store:
        if not as_json:
            err.print(f"[dim]simulating {plan_file} under {shape.spec} ...[/]")
        sim = simulate_plan(plan, shape, seconds, seed, store, host, outages=outages)
    if report is not None:
        from hwfit.report import simulation_page, write_page

        write_page(simulation_page(sim, str(plan_file)), report, "simulation page")
    if as_json:
        print(json.dumps(sim.to_dict(), indent=2, default=float))
        return
    print_simulation(Console(), sim, str(plan_file), report)


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def print_simulation(console: Console, sim, label: str, report: Path | None) -> None:
    result = sim.result
    host = sim.host
    console.print(
        f"[bold]hwfit simulate[/] {label} under [bold]{sim.traffic.spec}[/] — {sim.duration_s:.4g} s simulated, "
        f"{result.offered} requests counted (first {sim.warmup_s:.3g} s left out), seed {sim.seed}. "
        "Every figure is [italic]simulated[/]: a discrete-event model of hwfit serve on the plan's measured "
        "service-time curves."
    )
    reasons = ", ".join(f"{k}: {v}" for k, v in result.refused_reasons.items()) or "none"
    overall = Table(title="The server", title_justify="left")
    for column in ("offered req/s", "answered req/s", "refused", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"):
        overall.add_column(column, justify="right")
    overall.add_row(
        f"{result.offered_rps:.4g}",
        f"{result.answered_rps:.4g}",
        f"{result.refused} ({result.refused_share:.1%}; {reasons})",
        _ms(result.p50_ms),
        _ms(result.p90_ms),
        _ms(result.p99_ms),
        _ms(result.p999_ms),
        _ms(result.max_ms),
    )
    console.print(overall)
    pools = Table(title="Pools", title_justify="left")
    for column in ("pool", "role", "answered", "p50 ms", "p99 ms", "mean batch", "busy", "queue mean/max"):
        pools.add_column(column, justify="left" if column in ("pool", "role") else "right")
    for pool in result.pools:
        pools.add_row(
            pool.name,
            pool.role,
            str(pool.answered),
            _ms(pool.p50_ms),
            _ms(pool.p99_ms),
            "—" if pool.mean_batch_size is None else f"{pool.mean_batch_size:.2f}",
            f"{pool.utilization:.0%}",
            f"{pool.mean_queue_samples:.1f}/{pool.max_queue_samples}",
        )
    console.print(pools)
    console.print(_timeline_table(result))
    energy = "unknown" if result.j_per_inference is None else f"{result.j_per_inference:.3g} J/inference"
    cost = "unknown" if result.cost_per_million is None else f"${result.cost_per_million:.3g} per million answered"
    console.print(f"Energy: {energy}; cost: {cost} (from the plan's figures; see below).")
    deadline = "none" if host.deadline_ms is None else f"{host.deadline_ms:g} ms (the SLO p99)"
    console.print(
        f"Server model: default deadline {deadline}; overhead {host.overhead_ms:g} ms per request"
        + (" (not included: pass --overhead-ms)" if not host.overhead_ms else "")
        + (f"; host CPU {host.host_cpu_ms_per_request:g} ms/request on {host.cores:g} cores" if host.cores else "")
        + (f"; batches × {host.service_stretch:g} of the curve" if host.service_stretch != 1.0 else "")
    )
    for source in sim.sources:
        console.print(f"  [dim]{source.pool}: jitter {source.jitter}; energy {source.energy}; cost {source.cost}[/]")
    if report is not None:
        console.print(f"Page: {report}")


def _timeline_table(result, rows: int = 12) -> Table:
    """The timeline folded into at most `rows` intervals."""
    bins = result.timeline
    step = max(1, -(-len(bins) // rows))
    width = (bins[1].start_s - bins[0].start_s) if len(bins) > 1 else result.window_s
    table = Table(title="Over time", title_justify="left")
    for column in ("from s", "offered/s", "answered/s", "refused", "p99 ms", "busy", "queue"):
        table.add_column(column, justify="right")
    for i in range(0, len(bins), step):
        group = bins[i : i + step]
        seconds = width * len(group)
        p99s = [b.p99_ms for b in group if b.p99_ms is not None]
        table.add_row(
            f"{group[0].start_s - bins[0].start_s:.0f}",
            f"{sum(b.offered for b in group) / seconds:.4g}",
            f"{sum(b.answered for b in group) / seconds:.4g}",
            str(sum(b.refused for b in group)),
            _ms(max(p99s) if p99s else None),
            f"{sum(b.utilization for b in group) / len(group):.0%}",
            f"{sum(b.queue_samples for b in group) / len(group):.1f}",
        )
    return table
