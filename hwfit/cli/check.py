"""`hwfit check MODEL --baseline REF`: the CI gate. Measures the candidate in rounds of fresh
processes (interleaved with the baseline's model where it can run here), compares with the
baseline per variant × metric, prints a table (or --json), writes Markdown and JUnit on request,
and exits 0 pass, 1 regression, 2 could not compare."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from hwfit.cli._app import app
from hwfit.core import HwfitError

VERDICT_STYLE = {"fail": "red", "warn": "yellow", "pass": "green", "improved": "green", "incomparable": "magenta"}
# Without --sweep, a new baseline covers ONNX Runtime fp32 at batch 1 on the CPU: quick, and the
# variant every model has.
DEFAULT_SWEEP = {"backends": ["ort"], "devices": ["cpu"], "precisions": ["fp32"], "batch_sizes": [1]}


@app.command(
    epilog="Examples:\n\n"
    "  hwfit check model.onnx --baseline .hwfit/baseline.json --update-baseline   # record the baseline\n\n"
    "  hwfit check model.onnx --baseline .hwfit/baseline.json --baseline-model main/model.onnx "
    "--markdown summary.md --junit check.xml\n\n"
    "  hwfit check minilm --baseline 12 --thresholds thresholds.yaml --json   # against stored run 12"
)
def check(
    model: str = typer.Argument(
        ..., help="The candidate: built-in name, .onnx/.pt/.pt2 file, folder or module:factory."
    ),
    baseline: str = typer.Option(
        ...,
        "--baseline",
        help="Baseline file (JSON, kept in your repository; `hwfit results RUN --format json` exports work too) "
        "or a stored run id.",
    ),
    baseline_model: str | None = typer.Option(
        None,
        "--baseline-model",
        help="The model the baseline was recorded with, where it can run here (e.g. the main branch's file): "
        "both are then measured interleaved. Default: the baseline's own model path, if it still holds that model.",
    ),
    sweep_file: Path | None = typer.Option(
        None, "--sweep", help="YAML sweep file choosing the variants (backends, precisions, batch_sizes, threads, ...)."
    ),
    thresholds_file: Path | None = typer.Option(
        None, "--thresholds", help="YAML: alpha, metrics: {p99_ms: {fail: 0.2, warn: 0.1}}, variants: {PATTERN: ...}."
    ),
    update_baseline: bool = typer.Option(
        False, "--update-baseline", help="Measure the model and write it as the baseline file; compares nothing."
    ),
    rounds: int = typer.Option(
        10, "--rounds", min=2, max=50, help="Fresh processes per variant and side (7 or more to ever fail)."
    ),
    round_s: float = typer.Option(1.0, "--round-s", min=0.05, help="Measuring seconds per round."),
    warmup_s: float = typer.Option(0.5, "--warmup-s", min=0.0, help="Warm-up seconds per round."),
    allow_env_change: bool = typer.Option(
        False,
        "--allow-env-change",
        help="Fail on timings even when the baseline ran on another CPU, GPU or core count.",
    ),
    fail_on_stored: bool = typer.Option(
        False,
        "--fail-on-stored",
        help="Fail on timings compared with the baseline's stored rounds (default: warn; only rounds measured "
        "now, interleaved with --baseline-model, fail on timing).",
    ),
    markdown_path: Path | None = typer.Option(
        None, "--markdown", help="Write the Markdown summary here (e.g. then append it to $GITHUB_STEP_SUMMARY)."
    ),
    junit_path: Path | None = typer.Option(
        None, "--junit", help="Write JUnit XML here (a test case per variant × metric)."
    ),
    shape: list[str] | None = typer.Option(None, "--shape", help="Input shape override, e.g. input_ids=B,64."),
    db: Path | None = typer.Option(None, "--db", help="Results database (default: ~/.cache/hwfit/results.db)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON only."),
) -> None:
    """Gate a model on its baseline: exit 0 pass, 1 a regression you can trust, 2 could not compare.

    Example: hwfit check model.onnx --baseline .hwfit/baseline.json --markdown summary.md
    """
    err = Console(stderr=True, soft_wrap=True)
    try:
        report = _run(
            model, baseline, baseline_model, sweep_file, thresholds_file, update_baseline,
            (rounds, round_s, warmup_s), (allow_env_change, fail_on_stored), shape, db, as_json, err,
        )  # fmt: skip
    except HwfitError as error:
        err.print(f"[bold red]error:[/] {escape(str(error))}")
        if as_json:
            print(
                json.dumps({"schema": "hwfit.check/1", "verdict": "incomparable", "exit_code": 2, "error": str(error)})
            )
        raise typer.Exit(2) from None
    from hwfit.check import junit_xml, markdown

    if markdown_path:
        markdown_path.write_text(markdown(report))
    if junit_path:
        junit_path.write_text(junit_xml(report))
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(report)
    if update_baseline and report.exit_code == 0:
        err.print(f"baseline written to {baseline} (run {report.candidate_run_id})", highlight=False)
    raise typer.Exit(report.exit_code)


def _run(
    model, baseline_ref, baseline_model_ref, sweep_file, thresholds_file, update, timing, allow, shape, db, quiet, err
):
    from hwfit.check import (
        CheckError,
        CheckSettings,
        is_run_id,
        load_baseline,
        load_thresholds,
        run_check,
        write_baseline,
    )
    from hwfit.models import load_model, parse_shape_overrides
    from hwfit.profile import RoundSettings
    from hwfit.store import open_store

    thresholds = load_thresholds(thresholds_file)
    overrides = parse_shape_overrides(shape or [])
    candidate = load_model(model, overrides)
    if update and is_run_id(baseline_ref):
        raise CheckError(
            "--update-baseline writes a baseline file: give --baseline a path such as .hwfit/baseline.json"
        )
    baseline = None if update else load_baseline(baseline_ref, db)
    wanted = _wanted_variants(candidate, sweep_file, record=update)
    companion = _baseline_model(baseline, baseline_model_ref, candidate, overrides, err)
    settings = CheckSettings(RoundSettings(*timing), thresholds, *allow)
    arms = 2 if companion is not None and companion.content_hash != candidate.content_hash else 1
    count = len(wanted) if wanted else len(baseline.usable)
    with open_store(db) as store, _progress(err, quiet, timing[0] * count * arms) as advance:
        report = run_check(
            candidate, baseline, settings, store, wanted, companion, advance, {"model": model, "baseline": baseline_ref}
        )
        if update and report.exit_code == 0:
            write_baseline(baseline_ref, store.export(report.candidate_run_id, "json"))
    return report


def _wanted_variants(candidate, sweep_file: Path | None, record: bool):
    """The sweep file's variants that can run here (None without a file when comparing: the baseline's)."""
    from hwfit.core import Variant
    from hwfit.profile import build_spec, load_sweep_file, plan_families

    if sweep_file is None and not record:
        return None
    spec = load_sweep_file(sweep_file) if sweep_file else build_spec(DEFAULT_SWEEP, origin="default check sweep")
    batches = spec.batch_sizes or [1]
    variants = []
    for template, reason in plan_families(candidate, spec):
        if reason:
            continue
        for batch in batches:
            variants.append(
                Variant(template.backend, template.device, template.precision, batch, template.threads, template.knobs)
            )
    return variants


def _baseline_model(baseline, explicit: str | None, candidate, overrides, err):
    """The baseline's model to run interleaved: the one named, else the baseline's own source where
    it is a path that still holds the model the baseline was recorded with."""
    from hwfit.models import load_model

    if baseline is None:
        return None
    if explicit:
        return load_model(explicit, overrides)
    source = baseline.run.model_source
    if not Path(source).exists() or source == candidate.source:
        return None
    try:
        companion = load_model(source, overrides)
    except HwfitError:
        return None
    return companion if companion.content_hash == baseline.run.model_hash else None


class _progress:
    """A spinner with the current round on stderr; `advance(text)` moves it on."""

    def __init__(self, console: Console, disabled: bool, total: int):
        self.bar = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(), console=console, disable=disabled, transient=True,
        )  # fmt: skip
        self.total = total

    def __enter__(self):
        self.bar.start()
        self.task = self.bar.add_task("computing the fp32 reference", total=self.total)
        first = [True]

        def advance(text: str) -> None:
            if not first[0]:
                self.bar.advance(self.task)
            first[0] = False
            self.bar.update(self.task, description=text)

        return advance

    def __exit__(self, *exc):
        self.bar.stop()


def _print_report(report) -> None:
    from hwfit.check import HEADLINE, format_change, format_p, format_value

    out = Console(width=max(Console().width, 150))
    out.print(f"[bold]hwfit check[/]: {HEADLINE[report.verdict]}  ({report.to_dict()['mode_how']})", highlight=False)
    table = Table("variant", "metric", "baseline", "candidate", "change [95% CI]", "p (worse)", "verdict", "why")
    for variant in report.variants:
        if variant.reason:
            table.add_row(variant.key, "—", "", "", "", "", "[magenta]incomparable[/]", escape(variant.reason))
        for result in variant.metrics:
            style = VERDICT_STYLE[result.verdict]
            table.add_row(
                variant.key,
                result.metric.label,
                format_value(result, result.baseline_median),
                format_value(result, result.candidate_median),
                format_change(result),
                format_p(result),
                f"[{style}]{result.verdict}[/]",
                escape(result.reason) if result.verdict != "pass" else "",
            )
    if report.mode == "record":
        for variant in report.variants:
            out.print(f"  {variant.key}: {escape(variant.reason) if variant.reason else 'recorded'}", highlight=False)
    elif report.variants:
        out.print(table)
    if report.environment_changes:
        env = Table("environment", "baseline", "candidate", "")
        unsound = {change.field for change in report.unsound}
        for change in report.environment_changes:
            flag = "[yellow]timings not comparable[/]" if change.field in unsound else ""
            env.add_row(change.label, str(change.baseline), str(change.candidate), flag)
        out.print(env)
    for note in report.notes:
        out.print(f"- {escape(note)}", highlight=False)
    out.print(
        f"{report.processes} processes in {report.wall_s:.0f} s; candidate recorded as run {report.candidate_run_id}",
        highlight=False,
    )
