"""`hwfit audit`: purchased compute against useful compute on this machine's devices, with the cause
and the fix, measured."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from hwfit.cli._app import app
from hwfit.core import format_si


@app.command(
    "audit",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": False},
    epilog="Examples:\n\n"
    "hwfit audit --seconds 60 --serve 127.0.0.1:8000   # a served model: waterfall, pools, advice\n\n"
    "hwfit audit --seconds 86400 --report audit.html   # a day, sampled sparsely\n\n"
    "hwfit audit --pid 4242                            # until process 4242 exits\n\n"
    "hwfit audit --precision bf16 -- python train.py   # the lifetime of a command\n\n"
    "hwfit audit --count-flops -- python train.py      # ... with its FLOPs counted by torch",
)
def audit(
    ctx: typer.Context,
    seconds: float | None = typer.Option(
        None, "--seconds", "-s", help="Window length (default 60; with --pid or a COMMAND: until they end)."
    ),
    serve: list[str] = typer.Option([], "--serve", help="An `hwfit serve` URL to audit (repeatable)."),
    pid: list[int] = typer.Option([], "--pid", help="A process to audit, with its children (repeatable)."),
    device: list[str] = typer.Option([], "--device", "-d", help="cpu or cuda:N (repeatable; default: every device)."),
    interval: float | None = typer.Option(
        None, "--interval", help="Seconds between samples (default from the window)."
    ),
    precision: str | None = typer.Option(
        None, "--precision", help="Precision in use where no served pool says it (default fp32)."
    ),
    price: float | None = typer.Option(None, "--price", help="The device's price in USD per hour (default: catalog)."),
    max_accuracy_loss: float = typer.Option(
        0.01, "--max-accuracy-loss", help="The model's tolerance for the precision advice (1 - cosine, or top-1 drop)."
    ),
    db: Path | None = typer.Option(
        None, "--db", help="Results database (default: $HWFIT_DB or ~/.cache/hwfit/results.db)."
    ),
    token: str | None = typer.Option(None, "--token", help="Bearer token of the served URLs."),
    count_flops: bool = typer.Option(
        False, "--count-flops", help="Run a `python SCRIPT.py` COMMAND under torch's FLOP counter (useful work)."
    ),
    report: Path | None = typer.Option(None, "--report", help="Write the audit as an HTML page to this file."),
    as_json: bool = typer.Option(False, "--json", help="Print the audit as JSON only."),
) -> None:
    """Watch the devices for a window and show where the purchased FLOPs went: a waterfall per device
    (idle, other processes, busy but not computing, batch, precision, below peak, useful), each step
    with how it was obtained and its price; per-process use; and advice backed by measurements.

    Put a COMMAND after `--` to audit its lifetime.
    """
    from hwfit.audit import AuditOptions, WatchSpec, default_devices, run_audit
    from hwfit.store import open_store, resolve_db_path

    command = tuple(ctx.args)
    if seconds is None and not command and not pid:
        seconds = 60.0
    spec = WatchSpec(
        seconds=seconds,
        devices=tuple(device) or default_devices(),
        serve_urls=tuple(serve),
        pids=tuple(pid),
        command=command,
        interval_s=interval,
        token=token,
        count_flops=count_flops,
    )
    options = AuditOptions(precision=precision, price_usd_per_hour=price, max_accuracy_loss=max_accuracy_loss)
    path = resolve_db_path(db)
    store = open_store(path, create=False) if path.exists() else None
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=as_json,
        transient=True,
    ) as progress:
        task = progress.add_task("auditing", total=seconds)
        result = run_audit(spec, store, options, on_tick=lambda done, total: progress.update(task, completed=done))
    if store is not None:
        store.close()
    if report is not None:
        from hwfit.report import audit_page

        report.write_text(audit_page(result))
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
        return
    _print(Console(), result, report)


def _print(out: Console, result, report: Path | None) -> None:
    obs = result.observation
    out.print(f"audit of {obs.window_s:.1f} s from {obs.started_at}: {obs.ended_because}")
    for waterfall in result.waterfalls:
        _print_waterfall(out, waterfall)
    if obs.processes:
        table = Table(title="processes", title_justify="left")
        for column in ("pid", "name", "parent", "CPU s", "CPUs avg", "run-queue wait s", "peak RSS MiB", "exited"):
            table.add_column(column, justify="left" if column in ("name", "exited") else "right")
        for p in sorted(obs.processes, key=lambda p: p.cpu_s, reverse=True)[:12]:
            table.add_row(
                str(p.pid),
                p.name,
                str(p.parent or ""),
                f"{p.cpu_s:.2f}",
                f"{p.cpu_s / obs.window_s:.2f}" if obs.window_s > 0 else "—",
                "—" if p.run_queue_wait_s is None else f"{p.run_queue_wait_s:.2f}",
                f"{p.peak_rss_bytes / 2**20:.0f}",
                "yes" if p.exited else "",
            )
        out.print(table)
    for pool in result.pools:
        w = pool.window
        mean = "—" if w.mean_batch is None else f"{w.mean_batch:.1f}"
        out.print(
            f"pool {w.pool.model}/{w.pool.pool} {w.pool.variant_key} x{w.pool.replicas}: {w.samples:.0f} samples in "
            f"{w.batches:.0f} batches (mean {mean}), {len(pool.evidence.points) if pool.evidence else 0} stored points"
        )
    if result.advice:
        out.print("[bold]advice[/]")
        for number, item in enumerate(result.advice, 1):
            out.print(f" {number}. [bold]{item.action}[/]\n    evidence: {item.evidence}\n    expected: {item.gain}")
    for note in result.notes + obs.notes:
        out.print(f"note: {note}")
    if report is not None:
        out.print(f"report written to {report}")


def _print_waterfall(out: Console, waterfall) -> None:
    """The steps as a table; where each figure came from as numbered notes under it."""
    title = f"{waterfall.device}: where the purchased {waterfall.precision} FLOPs went ({waterfall.window_s:.1f} s)"
    table = Table(title=title, title_justify="left")
    for column in ("step", "FLOPs", "share", "USD", "how", "from"):
        table.add_column(column, justify="left" if column in ("step", "how") else "right")
    for index, step in enumerate(waterfall.steps):
        useful = step is waterfall.useful
        name = step.name if index == 0 else ("= " if useful else "- ") + step.name
        table.add_row(
            f"[bold]{name}[/]" if index == 0 or useful else name,
            format_si(step.flops, "FLOP"),
            f"{step.share:.1%}",
            "—" if step.usd is None else f"{step.usd:.4f}",
            step.how,
            f"[{index + 1}]",
        )
    out.print(table)
    for index, step in enumerate(waterfall.steps):
        out.print(f"  [{index + 1}] {step.source}", highlight=False)
    for note in waterfall.notes:
        out.print(f"  note: {note}", highlight=False)
