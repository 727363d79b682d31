"""`hwfit results`: list profiled runs, show one as a table, or export it as JSON or CSV."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hwfit.cli._app import app
from hwfit.core import short_provenance
from hwfit.store import (
    Measurement,
    ResultsStore,
    Run,
    StoreError,
    open_store,
    resolve_db_path,
    runs_to_csv,
    runs_to_json,
)

STATUS_STYLE = {
    "ok": "green",
    "complete": "green",
    "unstable": "yellow",
    "running": "cyan",
    "interrupted": "yellow",
    "failed": "red",
    "skipped": "dim",
}
_MAX_TABLE_WIDTH = 200


@app.command(
    epilog="Examples:\n\n"
    "  hwfit results                          # recent runs\n\n"
    "  hwfit results 12                       # run 12: one row per variant, environment below\n\n"
    "  hwfit results 12 --format csv > run12.csv\n\n"
    "  hwfit results --model minilm --format json"
)
def results(
    run_id: int | None = typer.Argument(None, help="A run id from the listing; omit it to list runs."),
    fmt: str | None = typer.Option(None, "--format", help="json or csv: print that on stdout, nothing else."),
    db: Path | None = typer.Option(
        None, "--db", help="Results database (default: $HWFIT_DB or ~/.cache/hwfit/results.db)."
    ),
    model: str | None = typer.Option(None, "--model", help="Only runs of this model name or model-hash prefix."),
    limit: int = typer.Option(20, "--limit", min=1, help="How many runs to list, newest first."),
) -> None:
    """List profiled runs, or show one run's measurements; --format exports them.

    Every figure is as the profiler recorded it: latency with the 95% CI of its median, energy with how it was obtained.
    """
    if fmt is not None and fmt not in ("json", "csv"):
        raise typer.BadParameter(f"{fmt!r} is not a format; choose json or csv", param_hint="--format")
    try:
        store = _open(db)
        if store is None:
            _print_no_database(fmt)
            return
        with store:
            if run_id is None:
                _list(store, fmt, model, limit)
            else:
                show_run(store, run_id, fmt)
    except StoreError as error:
        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(str(error))}")
        raise typer.Exit(2) from None


def _open(db: Path | None) -> ResultsStore | None:
    """The store, or None when the default database does not exist yet (an explicit path must exist)."""
    explicit = db is not None or bool(os.environ.get("HWFIT_DB"))
    path = resolve_db_path(db)
    if not explicit and not path.exists():
        return None
    return open_store(path, create=False)


def _print_no_database(fmt: str | None) -> None:
    if fmt == "json":
        sys.stdout.write(runs_to_json([]))
    elif fmt == "csv":
        sys.stdout.write(runs_to_csv([]))
    else:
        _console().print(
            f"No runs yet ({resolve_db_path()} does not exist). Profile a model with `hwfit profile MODEL`."
        )


def _console() -> Console:
    return Console(width=max(Console().width, 120))  # tables stay readable in logs and pipes


# --- list ----------------------------------------------------------------------------------------


def _list(store: ResultsStore, fmt: str | None, model: str | None, limit: int) -> None:
    runs = store.list_runs(model=model, limit=limit)
    if fmt == "json":
        sys.stdout.write(runs_to_json(runs))
        return
    if fmt == "csv":
        sys.stdout.write(runs_to_csv(runs))
        return
    console = _console()
    if not runs:
        which = f" of model {model!r}" if model else ""
        console.print(f"No runs{which} in {store.path}. Profile a model with `hwfit profile MODEL`.")
        return
    console.print(_runs_table(runs, store.path))
    console.print("Show one with `hwfit results ID`; export it with `hwfit results ID --format csv`.")


def _runs_table(runs: list[Run], path: Path) -> Table:
    table = Table(title=f"Runs in {path}", title_justify="left")
    for header in ("id", "created (UTC)", "model", "status", "ok/unst./failed", "hwfit", "CPU / GPU"):
        table.add_column(header, justify="right" if header == "id" else "left")
    for run in runs:
        counts = run.status_counts
        table.add_row(
            str(run.id),
            run.created_at[:19].replace("T", " "),
            f"{escape(run.model_name)} [dim]{run.model_hash[:8]}[/]",
            _styled(run.status),
            f"{counts.get('ok', 0)}/{counts.get('unstable', 0)}/{counts.get('failed', 0)}",
            run.environment.hwfit_label,
            escape(_hardware(run)),
        )
    return table


# --- show ----------------------------------------------------------------------------------------


def show_run(store: ResultsStore, run_id: int, fmt: str | None = None) -> None:
    """Print one run (header, measurements, reasons, environment), or export it in `fmt`."""
    if fmt is not None:
        sys.stdout.write(store.export(run_id, fmt))
        return
    run = store.get_run(run_id)
    measurements = store.measurements(run_id)
    console = _console()
    console.print(_run_header(run))
    if measurements:
        table = _measurements_table(run, measurements)
        # Wider than the terminal rather than cut: variant keys and accuracy must be readable whole.
        unbounded = console.options.update(max_width=_MAX_TABLE_WIDTH)
        natural_width = console.measure(table, options=unbounded).maximum
        Console(width=max(console.width, natural_width)).print(table)
    elif store.train_experiments(run_id):
        console.print(_train_table(store.train_experiments(run_id)))
    else:
        console.print("No points recorded in this run yet.")
    _print_reasons(console, measurements)
    console.print(_environment_table(run))


def _train_table(rows: list[dict]) -> Table:
    """A `hwfit train` run: the baseline and each change tried, with its speedup and loss check."""
    table = Table(title="training experiments (hwfit train)")
    for column in ("change", "status", "ms/step", "samples/s", "speedup", "loss", "why"):
        table.add_column(column, justify="right" if column in ("ms/step", "samples/s", "speedup") else "left")
    for row in rows:
        loss = "—" if row["loss_ok"] is None else ("ok" if row["loss_ok"] else "moved")
        table.add_row(
            escape(row["name"]),
            _styled(row["status"]) if row["status"] in ("failed",) else row["status"],
            "—" if row["step_ms"] is None else f"{row['step_ms']:.1f}",
            "—" if row["samples_per_s"] is None else f"{row['samples_per_s']:.1f}",
            "—" if row["speedup"] is None else f"{row['speedup']:.2f}x",
            loss,
            escape(row["reason"]),
        )
    return table


def _run_header(run: Run) -> str:
    lines = [
        f"[bold]Run {run.id}[/]: {escape(run.model_name)} ({escape(run.model_source)}, hash {run.model_hash[:12]}) "
        f"— {_styled(run.status)}",
        f"created {run.created_at}" + (f", finished {run.finished_at}" if run.finished_at else ""),
        f"sweep {escape(run.sweep_key)}; {run.point_count} points",
    ]
    if run.note:
        lines.append(f"note: {escape(run.note)}")
    return "\n".join(lines)


def _measurements_table(run: Run, measurements: list[Measurement]) -> Table:
    table = Table(
        title=f"Run {run.id}: latency of one batch, ± half the 95% CI of the median; "
        "MFU as a share of the measured ceiling / of the datasheet peak",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("variant", no_wrap=True)  # a key is copied into commands: never cut it
    table.add_column("status", no_wrap=True)
    for header in ("p50 ms", "p99 ms", "samples/s"):
        table.add_column(header, justify="right", no_wrap=True)
    for header in ("ΔRSS MB", "MFU meas./spec", "bound", "J/sample"):
        table.add_column(header, justify="right")
    table.add_column("accuracy", justify="right", min_width=10)
    for measurement in measurements:
        table.add_row(
            escape(measurement.variant_key),
            _styled(measurement.status),
            _p50(measurement),
            _number(measurement.latency.p99_ms) if measurement.latency else "—",
            _number(measurement.samples_per_s),
            _number(measurement.peak_rss_delta_bytes / 1e6 if measurement.peak_rss_delta_bytes is not None else None),
            f"{_percent(measurement.mfu_vs_measured) or '—'} / {_percent(measurement.mfu_vs_spec) or '—'}",
            measurement.roofline_bound or "—",
            _energy(measurement),
            _accuracy(measurement),
        )
    return table


def _print_reasons(console: Console, measurements: list[Measurement]) -> None:
    explained = [m for m in measurements if m.reason and m.status != "ok"]
    for measurement in explained:
        console.print(f"{_styled(measurement.status)} {escape(measurement.variant_key)}: {escape(measurement.reason)}")


def _environment_table(run: Run) -> Table:
    environment = run.environment
    table = Table(title="Environment", title_justify="left", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    rows = [
        *environment.software(),
        ("CPU", environment.cpu_model),
        ("GPUs", ", ".join(environment.gpu_names) or None),
        ("host (hash)", environment.hostname_hash),
    ]
    for name, value in rows:
        table.add_row(name, escape(value) if value else "[dim]—[/]")
    return table


# --- cells ---------------------------------------------------------------------------------------


def _styled(status: str) -> str:
    style = STATUS_STYLE.get(status, "white")
    return f"[{style}]{escape(status)}[/]"


def _hardware(run: Run) -> str:
    cpu = run.environment.cpu_model or "unknown CPU"
    gpus = run.environment.gpu_names
    return f"{cpu} / {', '.join(gpus)}" if gpus else cpu


def _number(value: float | None) -> str:
    """Three significant figures, thousands separated; '—' for absent."""
    if value is None:
        return "—"
    if math.isnan(value):
        return "nan"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _p50(measurement: Measurement) -> str:
    latency = measurement.latency
    if latency is None:
        return "—"
    # Half the CI's width, as the stop rule measures it (profile.stats.ci_relative_half_width).
    half_width_ms = (latency.ci95_high_ms - latency.ci95_low_ms) / 2.0
    if not latency.p50_ms > 0 or math.isnan(half_width_ms):
        return _number(latency.p50_ms)
    share = half_width_ms / latency.p50_ms  # relative: readable whether p50 is 0.04 ms or 400 ms
    spread = "<0.01%" if share < 1e-4 else f"{share * 100:.2g}%"
    return f"{_number(latency.p50_ms)} [dim]±{spread}[/]"


def _percent(value: float | None) -> str | None:
    if value is None or math.isnan(value):
        return None
    return f"{value * 100:.2g}%" if abs(value) < 0.01 else f"{value * 100:.3g}%"


def _energy(measurement: Measurement) -> str:
    if measurement.energy_j_per_sample is None:
        return "—"
    how = short_provenance(measurement.energy_how)
    return f"{_number(measurement.energy_j_per_sample)} [dim]{escape(how)}[/]"


def _accuracy(measurement: Measurement) -> str:
    parts = []
    if measurement.top1_agreement is not None:
        parts.append(f"top1 {_percent(measurement.top1_agreement)}")
    elif measurement.cosine_mean is not None:
        least = f" (min {measurement.cosine_min:.4f})" if measurement.cosine_min is not None else ""
        parts.append(f"cos {measurement.cosine_mean:.4f}{least}")
    elif measurement.cosine_min is not None:
        parts.append(f"cos≥{measurement.cosine_min:.5f}")
    if measurement.task_accuracy is not None:
        parts.append(f"task {_percent(measurement.task_accuracy)}")
    return ", ".join(parts) or "—"
