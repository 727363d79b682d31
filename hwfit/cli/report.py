"""`hwfit report`: one self-contained HTML page for a profile run and/or a plan."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from hwfit.cli._app import app
from hwfit.core import HwfitError


@app.command(
    epilog="Examples:\n\n"
    "  hwfit report                            # the latest run -> report.html\n\n"
    "  hwfit report 12 -o run12.html           # run 12\n\n"
    "  hwfit report --plan plan.yaml           # the plan and the runs it names (search.run_ids)\n\n"
    "  hwfit report 12 --plan plan.yaml --db results.db"
)
def report(
    run_id: int | None = typer.Argument(
        None, help="A run id from `hwfit results`; default: the latest run, or with --plan the runs the plan names."
    ),
    plan_file: Path | None = typer.Option(
        None,
        "--plan",
        help="A plan.yaml written by `hwfit plan`: adds the chosen deployment, the candidates and the Pareto front.",
    ),
    output: Path = typer.Option(Path("report.html"), "--output", "-o", help="Where to write the HTML file."),
    db: Path | None = typer.Option(
        None, "--db", help="Results database (default: $HWFIT_DB or ~/.cache/hwfit/results.db)."
    ),
) -> None:
    """Write one self-contained HTML report (inline SVG charts, works offline): devices and ceilings,
    latency vs throughput, roofline, Pareto front, batch sweet spot, energy, cost, accuracy, environment.

    Every figure on the page says how it was obtained: measured, estimated, spec, or planned.
    """
    try:
        written = _write(run_id, plan_file, output, db)
    except HwfitError as error:
        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(str(error))}")
        raise typer.Exit(2) from None
    Console(soft_wrap=True).print(f"report written to {escape(str(written.resolve()))}")


def _write(run_id: int | None, plan_file: Path | None, output: Path, db: Path | None) -> Path:
    from hwfit.report import ReportError, choose_run_ids, read_plan, write_report
    from hwfit.store import open_store, resolve_db_path

    plan = read_plan(plan_file) if plan_file is not None else None
    plan_only = plan is not None and run_id is None and not plan.search.run_ids
    path = resolve_db_path(db)
    if plan_only:
        return write_report(None, [], output, plan, str(plan_file))
    if not path.exists():
        where = "" if db is not None or os.environ.get("HWFIT_DB") else " (the default database)"
        raise ReportError(
            f"no runs in the store: {path}{where} does not exist; run `hwfit profile MODEL` first, "
            "or point --db at another database"
        )
    with open_store(path, create=False) as store:
        run_ids = choose_run_ids(store, run_id, plan)
        return write_report(store, run_ids, output, plan, str(plan_file) if plan_file else None)
