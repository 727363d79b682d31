"""The report layer: one self-contained HTML page (inline CSS, inline SVG charts, a tiny inline
script) for profile runs and/or a plan, the page of a simulated plan (`simulation_page`) and the page
of an audit (`audit_page`).
Imports hwfit.core, hwfit.store, hwfit.plan, hwfit.forecast and hwfit.audit."""

from __future__ import annotations

from pathlib import Path

from hwfit.plan import Plan
from hwfit.report.audit import audit_page
from hwfit.report.data import ReportData, ReportError, choose_run_ids, load_report_data, read_plan
from hwfit.report.html import SECTIONS, render_page
from hwfit.report.simulation import simulation_page
from hwfit.store import ResultsStore


def build_report(
    store: ResultsStore | None, run_ids: list[int], plan: Plan | None = None, plan_source: str | None = None
) -> str:
    """The report's HTML for these runs and the optional plan. With a plan, `run_ids` may be empty
    (and `store` None): a plan-only report."""
    if not run_ids and plan is None:
        raise ReportError("nothing to report: give a run id or a plan")
    if run_ids and store is None:
        raise ReportError(f"runs {run_ids} were asked for but no results database was given")
    data = load_report_data(store, run_ids, plan, plan_source) if run_ids else ReportData((), plan, plan_source)
    return render_page(data)


def write_page(html: str, path: str | Path, what: str = "report") -> Path:
    """Write a page (folders made as needed); returns the path written."""
    target = Path(path).expanduser()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html, encoding="utf-8")
    except OSError as error:
        raise ReportError(f"cannot write the {what} to {target}: {error.strerror or error}") from None
    return target


def write_report(
    store: ResultsStore | None,
    run_ids: list[int],
    path: str | Path,
    plan: Plan | None = None,
    plan_source: str | None = None,
) -> Path:
    """Build the report and write it to `path` (folders made as needed); returns the path written."""
    return write_page(build_report(store, run_ids, plan, plan_source), path)


__all__ = [
    "audit_page",
    "SECTIONS",
    "ReportData",
    "ReportError",
    "build_report",
    "choose_run_ids",
    "load_report_data",
    "read_plan",
    "simulation_page",
    "write_page",
    "write_report",
]
