"""`hwfit load URL`: send load to a KServe v2 server (open loop at a traffic shape, or closed loop)
and print latency percentiles, throughput next to the offered rate, refusals with the server's
reasons, errors and late sends. It runs in a process of its own: no GIL shared with the server."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hwfit.cli._app import app


@app.command(
    epilog="Examples:\n\n"
    "  hwfit load http://127.0.0.1:8000 --traffic poisson:50 --duration 20\n\n"
    "  hwfit load http://127.0.0.1:8000 --concurrency 8 --binary\n\n"
    "  hwfit load --traffic steps:20@10s,80@10s --records run.csv --report run.html\n\n"
    "  hwfit load --traffic trace:run.csv --shape input_ids=1,128 --json"
)
def load(
    url: str = typer.Argument("http://127.0.0.1:8000", help="The server's HTTP address (KServe v2)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Model name (default: the only one listed)."),
    traffic: str | None = typer.Option(
        None,
        "--traffic",
        "-t",
        help="Open loop: poisson:RATE, constant:RATE, diurnal:PEAK,TROUGH,PERIOD, burst:BASE,PEAK,EVERY,FOR, "
        "steps:RATE@FOR,..., or trace:FILE.csv.",
    ),
    concurrency: int | None = typer.Option(
        None, "--concurrency", "-c", help="Closed loop: N clients (default when no --traffic: 1)."
    ),
    duration_s: float = typer.Option(10.0, "--duration", "-d", help="Seconds of sending, warm-up included."),
    warmup_s: float = typer.Option(1.0, "--warmup", help="First seconds sent but left out of the figures."),
    max_requests: int = typer.Option(100_000, "--max-requests", help="Send at most this many requests."),
    timeout_s: float = typer.Option(30.0, "--timeout", help="Per-request timeout, seconds."),
    drain_s: float = typer.Option(
        5.0, "--drain", help="Seconds after the last send to wait for answers; the rest are cancelled and counted."
    ),
    binary: bool = typer.Option(False, "--binary", help="Binary tensor extension instead of JSON tensors."),
    shape: list[str] | None = typer.Option(
        None, "--shape", help="Fill an input's -1 dims (default 1): NAME=D,D,... e.g. input_ids=1,128; repeat."
    ),
    input_file: Path | None = typer.Option(
        None, "--input", help="Inputs from a KServe v2 request JSON or a .npz instead of random ones."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the arrival times and the random inputs."),
    token: str | None = typer.Option(None, "--token", help="Bearer token, if the server requires one."),
    allow_remote: bool = typer.Option(
        False, "--allow-remote", help="Allow a host that is not this machine (only a server you may load)."
    ),
    records: Path | None = typer.Option(
        None, "--records", help="Write one CSV row per request (its scheduled_s column replays as trace:FILE)."
    ),
    report: Path | None = typer.Option(None, "--report", help="Write an HTML page with latency over time."),
    as_json: bool = typer.Option(False, "--json", help="Print the settings and summary as JSON only."),
) -> None:
    """Send load to a KServe v2 server and measure it: p50/p90/p99/p99.9/max latency timed from the
    scheduled send (a queue cannot hide), answered/s next to the offered rate, refusals (HTTP 429/503)
    per reason, errors by kind, late sends. Loopback only unless --allow-remote."""
    from hwfit.load import LoadConfig, load_json, run_load, write_report

    config = LoadConfig(
        url=url,
        model=model,
        traffic=traffic,
        concurrency=concurrency,
        duration_s=duration_s,
        warmup_s=warmup_s,
        max_requests=max_requests,
        timeout_s=timeout_s,
        drain_s=drain_s,
        binary=binary,
        seed=seed,
        shape=shape or None,
        input_file=input_file,
        allow_remote=allow_remote,
        token=token,
    ).checked()
    err = Console(stderr=True)
    show_progress = not as_json and err.is_terminal and sys.stderr.isatty()
    result = _run(config, run_load, err if show_progress else None)
    if records:
        result.write_records_csv(records)
    if report:
        write_report(result, report)
    if as_json:
        print(load_json(result))
        return
    console = Console()
    console.print(_table(result))
    for path, what in ((records, "records"), (report, "report")):
        if path:
            console.print(f"{what}: {escape(str(path))}")


def _run(config, run_load, console: Console | None):
    if console is None:
        return run_load(config)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]load[/]"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
        TextColumn("sent {task.fields[sent]}  ended {task.fields[ended]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with bar:
        task = bar.add_task("load", total=config.duration_s, sent=0, ended=0)

        def progress(elapsed_s: float, sent: int, ended: int) -> None:
            bar.update(task, completed=min(elapsed_s, config.duration_s), sent=sent, ended=ended)

        return run_load(config, progress)


def _ms(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def _table(result) -> Table:
    s = result.summary()
    load = f"traffic {result.traffic}" if result.mode == "open" else f"closed loop, {result.concurrency} client(s)"
    table = Table(
        title=f"hwfit load → {escape(result.url)}: {load}, {s['window_s']:g} s measured after {s['warmup_s']:g} s "
        "warm-up (excluded)",
        title_justify="left",
        show_header=False,
    )
    table.add_column("figure")
    table.add_column("value")
    table.add_row("model", f"{escape(result.model)} ({escape(result.model_how)})")
    table.add_row("inputs", escape(result.inputs))
    table.add_row("answered / offered", f"{s['answered_rps']:.1f} / {s['offered_rps']:.1f} req/s")
    table.add_row(
        "latency p50 / p90 / p99 / p99.9 / max",
        " / ".join(_ms(s[k]) for k in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"))
        + " ms"
        + (" (from the scheduled send)" if result.mode == "open" else " (from the send)"),
    )
    table.add_row("ok", str(s["ok"]))
    table.add_row("rejected (429/503)", _styled(s["rejected"], "yellow"))
    for reason, count in s["rejected_reasons"].items():
        table.add_row(f"  {count}×", escape(reason))
    table.add_row("errors", _styled(s["errors"], "red"))
    for kind, count in s["error_kinds"].items():
        table.add_row(f"  {count}×", escape(kind))
    table.add_row("cancelled at the drain", _styled(s["cancelled"], "red"))
    if result.mode == "open":
        late = f"{s['late']} (> {s['late_threshold_ms']:g} ms after schedule"
        late += f"; max {s['max_late_ms']:.1f} ms)" if s["max_late_ms"] is not None else ")"
        table.add_row("late sends", _styled(s["late"], "yellow", late))
    return table


def _styled(count: int, style: str, text: str | None = None) -> str:
    text = text if text is not None else str(count)
    return f"[{style}]{escape(text)}[/]" if count else escape(text)
