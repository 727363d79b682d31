"""`hwfit plan MODEL --slo slo.yaml`: the deployment that meets the SLO at the lowest cost (or
energy, latency, throughput), measured where the store lacks the points it needs.

The wiring lives here because it spans layers that may not import each other: the planner
(plan) takes a `measure` callable, and this module hands it the profiler's point session.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from hwfit.cli._app import app
from hwfit.core import HwfitError, Variant, is_gpu, usable_threads

PLAN_BUDGET_S = 4.0  # measuring seconds per point for the planner (the stop rule ends most sooner)
PLAN_WARMUP_S = 2.0


@app.command()
def plan(
    model: str = typer.Argument("minilm", help="Built-in name, .onnx/.pt/.pt2 file, Hugging Face folder, or package.module:factory."),
    slo_file: Path = typer.Option(..., "--slo", help="SLO file (YAML): latency_p99_ms, throughput_rps, objective, devices, ..."),
    output: Path = typer.Option(Path("plan.yaml"), "--output", "-o", help="Where to write the plan."),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write the HTML report of the plan here."),
    export: Optional[str] = typer.Option(None, "--export", help="Also export the plan for a server: 'triton'."),
    export_dir: Optional[Path] = typer.Option(None, "--export-dir", help="Directory of the export (a Triton model repository)."),
    budget: Optional[int] = typer.Option(None, "--budget", help="Most points to measure (default: 10% of the grid)."),
    no_measure: bool = typer.Option(False, "--no-measure", help="Plan from stored measurements only."),
    point_seconds: float = typer.Option(PLAN_BUDGET_S, "--point-seconds", help="Measuring seconds per point."),
    db: Optional[Path] = typer.Option(None, "--db", help="Results database (default: ~/.cache/hwfit/results.db)."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON only."),
) -> None:
    """Choose device, backend, precision, batching and replicas for MODEL so that the SLO is met
    at the best objective; measure (through the profiler) only the points that can still win.

    Example: hwfit plan minilm --slo examples/slo-latency.yaml --report report.html --export triton --export-dir triton-repo
    """
    from hwfit.models import load_model
    from hwfit.plan import load_slo
    from hwfit.store import open_store

    slo = load_slo(slo_file)
    if export not in (None, "triton"):
        raise typer.BadParameter(f"--export {export!r}: the only export is 'triton'")
    if export and export_dir is None:
        raise typer.BadParameter("--export triton needs --export-dir DIR (the model repository to write)")
    loaded = load_model(model)
    err = Console(stderr=True)
    with open_store(db) as store:
        made = _plan_with_store(loaded, model, slo, store, budget, no_measure, point_seconds, err, quiet=as_json)
        made.save(output)
        if report is not None:
            _write_report(store, made, report)
    exported = None
    if export and made.feasible:
        exported = _export_triton(made, loaded, export_dir)
    elif export:
        Console(stderr=True).print("[yellow]the SLO is infeasible: there is no plan to export to Triton[/]")
    if as_json:
        import json

        print(json.dumps(made.to_dict(), indent=2))
        return
    _print_plan(made, output, report, exported)
    if not made.feasible:
        raise typer.Exit(3)


def _plan_with_store(loaded, model_arg, slo, store, budget, no_measure, point_seconds, err, quiet):
    from hwfit.cli.profile import ProgressObserver
    from hwfit.plan import ModelRef, PlanRequest, make_plan
    from hwfit.plan.search import Grid
    from hwfit.profile import build_spec, grid_variants, open_point_session

    offers = device_offers(slo)
    present = [device for device in offers if _device_present(device)]
    grid_points, unavailable = grid_variants(loaded, present)
    grid = Grid.from_variants(grid_points)
    known, run_ids = stored_points(store, loaded)
    observer = ProgressObserver(err, disabled=quiet)
    spec = build_spec({"budget_s": point_seconds, "warmup_s": PLAN_WARMUP_S}, origin="hwfit plan")
    session = {}

    def measure(variants: list[Variant]):
        if "open" not in session:
            session["open"] = open_point_session(loaded, spec, store, observer, set(present),
                                                 {"model": model_arg, "command": "plan"})
            run_ids.append(session["open"].run_id)
        return session["open"].measure(variants)

    def on_round(text: str) -> None:
        observer.stage(text[:120])

    request = PlanRequest(
        model=ModelRef(name=loaded.name, source=loaded.source, hash=loaded.content_hash),
        grid=grid, known=known, offers=offers, measure=None if no_measure else measure, budget=budget,
        default_accuracy_loss=default_accuracy_loss(loaded), run_ids=run_ids, on_round=on_round,
    )
    with observer:
        total = budget if budget is not None else max(1, -(-grid.size // 10))
        observer.planned(total + 1)
        try:
            if not no_measure and "cpu" in present:
                request.baseline = _baseline(known, measure)
            made = make_plan(request, slo)
        except KeyboardInterrupt:
            observer.stop()
            if "open" in session:
                session["open"].close("interrupted", "stopped by the user; `hwfit plan` again reuses what was measured")
            err.print("[yellow]interrupted[/]: measured points are saved; run the same command again to reuse them.")
            raise typer.Exit(130)
        if "open" in session:
            session["open"].close()
    if unavailable and not quiet:
        err.print(f"[dim]{len(unavailable)} variant families cannot run here (see `hwfit variants {model_arg}`)[/]")
    return made


def _baseline(known, measure):
    """The naive baseline — PyTorch eager fp32, batch 1, one process on every core — from the store or measured."""

    baseline = Variant("torch", "cpu", "fp32", 1, usable_threads())
    for measurement in known:
        if measurement.variant_key == baseline.key:
            return measurement
    found = measure([baseline])
    return found[0] if found and found[0].status in ("ok", "unstable") else None


def device_offers(slo) -> dict:
    """Each device the SLO allows, with its count, hourly price (the SLO's, else the catalog's) and cores."""
    from hwfit.hardware import discover_gpus, load_catalog, spec_for_gpu
    from hwfit.plan import DeviceOffer

    catalog = load_catalog()
    offers = {}
    for name, allowance in slo.devices.items():
        cores = usable_threads() if name == "cpu" else None
        price, how = allowance.price_per_hour, "the SLO file"
        if price is None and name == "cpu" and catalog.cpu_price is not None:
            price = catalog.cpu_price.value * cores
            how = f"catalog, {catalog.cpu_price.value:g} USD/core-hour x {cores} cores ({catalog.cpu_price.how}: {catalog.cpu_price.source})"
        elif price is None and is_gpu(name):
            gpus = {f"cuda:{gpu.index}": gpu for gpu in discover_gpus()}
            spec = spec_for_gpu(gpus[name].name) if name in gpus else None
            if spec is not None and spec.price is not None:
                price, how = spec.price.value, f"catalog ({spec.price.how}: {spec.price.source})"
        if price is None:
            how = "unknown: set price_per_hour in the SLO file"
        offers[name] = DeviceOffer(name, allowance.count, price, how, cores)
    if slo.objective == "cost" or slo.max_cost_per_million is not None:
        unpriced = [name for name, offer in offers.items() if offer.price_per_hour is None]
        if unpriced:
            raise HwfitError(f"the SLO is about cost but {', '.join(unpriced)} has no price: add "
                             f"`price_per_hour` under devices.{unpriced[0]} in the SLO file")
    return offers


def _device_present(device: str) -> bool:
    from hwfit.hardware import device_names

    return device in device_names()


def stored_points(store, loaded) -> tuple[list, list[int]]:
    """Stored points of this model measured on this machine (same host and CPU), newest first;
    a CPU point measured with the default threads is the same as one with every core."""
    from hwfit.profile.environment import capture_environment

    here = capture_environment()
    seen, points, run_ids = set(), [], []
    for run, measurement in store.measurements_for_model(loaded.content_hash):
        environment = run.environment
        if (environment.hostname_hash, environment.cpu_model) != (here.hostname_hash, here.cpu_model):
            continue
        variant = measurement.as_variant()
        if variant.device == "cpu" and variant.threads is None:
            variant = replace(variant, threads=usable_threads())
        if variant.key in seen:
            continue
        seen.add(variant.key)
        measurement.variant, measurement.variant_key = variant.to_dict(), variant.key
        points.append(measurement)
        if run.id not in run_ids:
            run_ids.append(run.id)
    return points, run_ids


def default_accuracy_loss(loaded) -> float | None:
    """hwfit's accuracy tolerance for the model's task, as a loss (1 - the least agreement allowed)."""
    from hwfit.models.quality import TOLERANCES

    metric, least = TOLERANCES.get(loaded.task, TOLERANCES["generic"])
    return round(1.0 - least, 6) if metric in ("cosine_mean", "top1_agreement") else None


def _export_triton(made, loaded, directory: Path):
    """The plan as a Triton model repository, each pool with the ONNX file of its precision."""
    from hwfit.backends.ort import onnx_file
    from hwfit.plan import export_triton

    files = {}
    for pool in made.pools:
        if pool.backend in ("ort", "ort-trt", "openvino"):
            files[pool.name] = onnx_file(loaded, Variant.parse(pool.variant))[0]
    return export_triton(made, files, directory)


def _write_report(store, made, path: Path) -> None:
    from hwfit.report import write_report

    write_report(store, made.search.run_ids, path, plan=made)


def _print_plan(made, output: Path, report: Optional[Path], exported) -> None:
    out = Console(width=max(Console().width, 140))
    if made.feasible:
        table = Table(title="Plan", title_justify="left")
        for column in ("pool", "variant", "replicas", "max batch", "delay ms", "req/s", "p99 ms", "capacity", "J/inf", "$/M"):
            table.add_column(column, justify="right" if column not in ("pool", "variant") else "left")
        for pool in made.pools:
            e = pool.expected
            table.add_row(pool.name, pool.variant, f"{pool.devices}x{pool.replicas_per_device}", str(pool.max_batch_size),
                          f"{pool.max_queue_delay_ms:g}", f"{e.rate_rps:.4g}", _num(e.p99_ms), _num(e.capacity_rps),
                          _num(e.j_per_inference), _num(e.cost_per_million))
        out.print(table)
    else:
        out.print(f"[bold red]infeasible[/]: {made.infeasible.message}")
    rejected = [c for c in made.candidates if c.verdict == "rejected"]
    if rejected:
        out.print("[bold]Rejected[/] (the constraint each broke):")
        for candidate in rejected[:12]:
            out.print(f"  {candidate.config}: {candidate.why}", highlight=False)
    out.print(f"\n{made.answer}\n", highlight=False)
    out.print(f"plan: {output}" + (f"   report: {report}" if report else ""))
    if exported is not None:
        out.print(f"triton repository: {exported.repository} (models: {', '.join(exported.models)})")
        for pool, why in exported.left_out.items():
            out.print(f"  [yellow]not exported[/] {pool}: {why}", highlight=False)


def _num(value) -> str:
    return "-" if value is None else f"{value:.4g}"
