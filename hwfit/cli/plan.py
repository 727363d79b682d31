"""`hwfit plan MODEL --slo slo.yaml`: the deployment that meets the SLO at the lowest cost (or
energy, latency, throughput), measured where the store lacks the points it needs.

Parses, opens the store and the profiler's planning session, calls `hwfit.plan.plan_deployment`
with it (plan never imports the profiler), then saves, reports, exports and prints.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from hwfit.cli._app import app, ray_option
from hwfit.core import Variant

EXPORTS = ("triton", "ray-serve")
PLAN_BUDGET_S = 4.0  # measuring seconds per point for the planner (the stop rule ends most sooner)


@app.command()
def plan(
    model: str = typer.Argument(
        "minilm", help="Built-in name, .onnx/.pt/.pt2 file, Hugging Face folder, or package.module:factory."
    ),
    slo_file: Path = typer.Option(
        ..., "--slo", help="SLO file (YAML): latency_p99_ms, throughput_rps, objective, devices, ..."
    ),
    output: Path = typer.Option(Path("plan.yaml"), "--output", "-o", help="Where to write the plan."),
    report: Path | None = typer.Option(None, "--report", help="Also write the HTML report of the plan here."),
    export: str | None = typer.Option(
        None, "--export", help="Also export the plan for a server: 'triton' or 'ray-serve' (a `serve deploy` config)."
    ),
    export_dir: Path | None = typer.Option(
        None, "--export-dir", help="Directory of the export (a Triton model repository, or the Ray Serve config's)."
    ),
    budget: int | None = typer.Option(None, "--budget", help="Most points to measure (default: 10% of the grid)."),
    no_measure: bool = typer.Option(False, "--no-measure", help="Plan from stored measurements only."),
    point_seconds: float = typer.Option(PLAN_BUDGET_S, "--point-seconds", help="Measuring seconds per point."),
    db: Path | None = typer.Option(None, "--db", help="Results database (default: ~/.cache/hwfit/results.db)."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON only."),
    ray: str | None = ray_option("Measure on the cluster's nodes and plan over its node groups,"),
) -> None:
    """Choose device, backend, precision, batching and replicas for MODEL so that the SLO is met
    at the best objective; measure (through the profiler) only the points that can still win.

    Examples:

        hwfit plan minilm --slo examples/slo-latency.yaml --report report.html

        hwfit plan minilm --slo examples/slo-latency.yaml --export triton --export-dir triton-repo

        hwfit plan minilm --slo slo-cluster.yaml --ray --export ray-serve --export-dir ray-serve
    """
    from hwfit.models import load_model
    from hwfit.plan import load_slo
    from hwfit.store import open_store

    slo = load_slo(slo_file)
    if export not in (None, *EXPORTS):
        raise typer.BadParameter(f"--export {export!r}: the exports are {', '.join(EXPORTS)}")
    if export and export_dir is None:
        raise typer.BadParameter(f"--export {export} needs --export-dir DIR (where to write it)")
    cluster = _cluster(slo, ray)
    loaded = load_model(model)
    err = Console(stderr=True)
    with open_store(db) as store:
        made = _plan_with_store(
            loaded, model, cluster.slo, store, budget, no_measure, point_seconds, err, quiet=as_json, cluster=cluster
        )
        if cluster.inventory is not None:
            from hwfit.cluster import place_pools

            made = place_pools(made, cluster.group_of, cluster.inventory)
        made.save(output)
        if report is not None:
            _write_report(store, made, report)
    exported = None
    if export and made.feasible:
        exported = _export_triton(made, loaded, export_dir) if export == "triton" else _export_ray(made, export_dir)
    elif export:
        Console(stderr=True).print(f"[yellow]the SLO is infeasible: there is no plan to export to {export}[/]")
    if as_json:
        import json

        print(json.dumps(made.to_dict(), indent=2))
        return
    _print_plan(made, output, report, exported)
    if not made.feasible:
        raise typer.Exit(3)


class _Cluster:
    """Where `hwfit plan` measures: here (`inventory` None), or on a Ray cluster with the SLO's node
    groups turned into the devices they have (`group_of`: device -> node group)."""

    def __init__(self, slo, inventory=None, group_of=None, executor=None):
        self.slo, self.inventory, self.group_of, self.executor = slo, inventory, group_of or {}, executor

    @property
    def devices(self):
        return None if self.inventory is None else sorted({d for node in self.inventory for d in node.devices})


def _cluster(slo, ray: str | None) -> _Cluster:
    from hwfit.cluster import slo_node_groups

    if ray is None:
        groups = slo_node_groups(slo)
        if groups:
            raise typer.BadParameter(
                f"the SLO names node groups ({', '.join(groups)}): plan them on the cluster with --ray [ADDRESS]"
            )
        return _Cluster(slo)
    from hwfit.cluster import RayExecutor, cluster_inventory, connect, resolve_node_groups

    ray_module = connect(ray)
    with Console(stderr=True).status("taking the cluster's inventory (each node's devices, measured there)"):
        inventory = cluster_inventory(ray, ceilings=True)
    planned_slo, group_of = resolve_node_groups(slo, inventory)
    executor = RayExecutor(ray_module, inventory, group_of=group_of)  # each group's points on its own nodes
    return _Cluster(planned_slo, inventory, group_of, executor)


def _plan_with_store(loaded, model_arg, slo, store, budget, no_measure, point_seconds, err, quiet, cluster=None):
    """The plan, measuring through a planning session on this machine (or the cluster's nodes); Ctrl-C
    exits 130, keeping what was measured."""
    from hwfit.cli.profile import ProgressObserver
    from hwfit.models import default_accuracy_loss
    from hwfit.plan import ModelRef, plan_deployment, planned_devices
    from hwfit.profile import PlanningSession

    observer = ProgressObserver(err, disabled=quiet)
    source = PlanningSession(
        loaded,
        planned_devices(slo),
        store,
        observer,
        point_seconds=point_seconds,
        args={"model": model_arg, "command": "plan", "ray": cluster is not None and cluster.inventory is not None},
        executor=None if cluster is None else cluster.executor,
        available=None if cluster is None else cluster.devices,
    )
    model = ModelRef(name=loaded.name, source=loaded.source, hash=loaded.content_hash)
    with observer:
        try:
            with source:
                made = plan_deployment(
                    model,
                    slo,
                    source,
                    budget=budget,
                    measure=not no_measure,
                    default_accuracy_loss=default_accuracy_loss(loaded),
                    on_round=lambda text: observer.stage(text[:120]),
                    on_planned=observer.planned,
                )
        except KeyboardInterrupt:
            observer.stop()
            err.print("[yellow]interrupted[/]: measured points are saved; run the same command again to reuse them.")
            raise typer.Exit(130) from None
    if source.unavailable and not quiet:
        err.print(
            f"[dim]{len(source.unavailable)} variant families cannot run here (see `hwfit variants {model_arg}`)[/]"
        )
    return made


def _export_triton(made, loaded, directory: Path):
    """The plan as a Triton model repository, each pool with the ONNX file of its precision."""
    from hwfit.backends import onnx_file
    from hwfit.plan import export_triton

    files = {}
    for pool in made.pools:
        if pool.backend in ("ort", "ort-trt", "openvino"):
            files[pool.name] = onnx_file(loaded, Variant.parse(pool.variant))[0]
    return export_triton(made, files, directory)


def _export_ray(made, directory: Path):
    from hwfit.cluster import export_ray_serve

    return export_ray_serve(made, directory)


def _write_report(store, made, path: Path) -> None:
    from hwfit.report import write_report

    write_report(store, made.search.run_ids, path, plan=made)


def _print_plan(made, output: Path, report: Path | None, exported) -> None:
    out = Console(width=max(Console().width, 140))
    if made.feasible:
        table = Table(title="Plan", title_justify="left")
        for column in (
            "pool",
            "variant",
            "replicas",
            "max batch",
            "delay ms",
            "req/s",
            "p99 ms",
            "capacity",
            "J/inf",
            "$/M",
        ):
            table.add_column(column, justify="right" if column not in ("pool", "variant") else "left")
        for pool in made.pools:
            e = pool.expected
            table.add_row(
                pool.name,
                pool.variant,
                f"{pool.devices}x{pool.replicas_per_device}",
                str(pool.max_batch_size),
                f"{pool.max_queue_delay_ms:g}",
                f"{e.rate_rps:.4g}",
                _num(e.p99_ms),
                _num(e.capacity_rps),
                _num(e.j_per_inference),
                _num(e.cost_per_million),
            )
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
    if isinstance(exported, Path):
        out.print(f"ray serve config: {exported} (deploy: serve deploy {exported})")
    elif exported is not None:
        out.print(f"triton repository: {exported.repository} (models: {', '.join(exported.models)})")
        for pool, why in exported.left_out.items():
            out.print(f"  [yellow]not exported[/] {pool}: {why}", highlight=False)


def _num(value) -> str:
    return "-" if value is None else f"{value:.4g}"
