"""`hwfit profile MODEL`: sweep variants × batch sizes, each point measured in its own process,
recorded in the results store; re-running the same command resumes."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from hwfit.cli._app import app, ray_option, split_values
from hwfit.cli.results import show_run

STATUS_STYLE = {"ok": "green", "unstable": "yellow", "failed": "red", "skipped": "dim"}


@app.command()
def profile(
    model: str = typer.Argument(
        "minilm", help="Built-in name, .onnx/.pt/.pt2 file, Hugging Face folder, or package.module:factory."
    ),
    sweep_file: Path | None = typer.Option(
        None,
        "--sweep",
        help="YAML sweep file (fields: backends, devices, precisions, batch_sizes, max_batch, threads, knobs, "
        "budget_s, ...).",
    ),
    backend: list[str] | None = typer.Option(None, "--backend", "-b", help="Backends (default: all installed)."),
    device: list[str] | None = typer.Option(None, "--device", "-d", help="Devices (default: all found)."),
    precision: list[str] | None = typer.Option(
        None, "--precision", "-p", help="fp32, fp16, bf16, int8-dynamic, int8-static."
    ),
    batch: list[str] | None = typer.Option(
        None,
        "--batch",
        help="Batch sizes, e.g. 1,8,32 (default: grow 1, 2, 4, ... until throughput stops rising by 3%).",
    ),
    threads: list[str] | None = typer.Option(
        None, "--threads", help="Intra-op thread counts to sweep (default: all usable cores)."
    ),
    replicas: list[str] | None = typer.Option(
        None, "--replicas", help="Replica counts measured running together, e.g. 1,2 with --threads 1 (default: 1)."
    ),
    budget: float | None = typer.Option(None, "--budget", help="Measuring seconds per point (default 8)."),
    processes: int | None = typer.Option(
        None,
        "--processes",
        help="Measure each point in N fresh processes and flag it unstable when they disagree (default 1).",
    ),
    shape: list[str] | None = typer.Option(None, "--shape", help="Input shape override, e.g. input_ids=B,64."),
    db: Path | None = typer.Option(None, "--db", help="Results database (default: ~/.cache/hwfit/results.db)."),
    fresh: bool = typer.Option(
        False,
        "--fresh",
        help=(
            "Start a new run instead of resuming one with the same arguments, and measure this machine's"
            " ceilings again (a cluster's nodes keep theirs)."
        ),
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the run's measurements as JSON only."),
    ray: str | None = ray_option("Measure each point on a node that has its device,"),
) -> None:
    """Measure what MODEL costs on every variant and batch size: latency distribution, throughput,
    memory, MFU, energy and accuracy, stored for `hwfit results` and the planner.

    Example: hwfit profile minilm --backend ort,openvino --batch 1,8,32

    On a Ray cluster: hwfit profile minilm --backend ort --threads 1,2 --ray
    """
    from hwfit.models import load_model, parse_shape_overrides
    from hwfit.profile import build_spec, load_sweep_file, sweep
    from hwfit.store import open_store

    settings = _flag_settings(backend, device, precision, batch, threads, replicas, budget, processes)
    spec = load_sweep_file(sweep_file, settings) if sweep_file else build_spec(settings, origin="command line")
    loaded = load_model(model, parse_shape_overrides(shape or []))
    err = Console(stderr=True)
    with open_store(db) as store:
        observer = ProgressObserver(err, disabled=as_json)
        with observer:
            try:
                args = {"model": model, "shape": shape or []}
                if ray is not None:
                    from hwfit.cluster import cluster_sweep

                    result, _ = cluster_sweep(loaded, spec, store, observer, ray, fresh=fresh, args=args)
                else:
                    result = sweep(loaded, spec, store, observer, fresh=fresh, args=args)
            except KeyboardInterrupt:
                observer.stop()
                err.print("[yellow]interrupted[/]: the run is saved; run the same command again to resume.")
                raise typer.Exit(130) from None
        if as_json:
            print(store.export(result.run_id, "json"))
            return
        show_run(store, result.run_id)
    out = Console(width=max(Console().width, 150))
    _print_families(out, result)
    out.print(
        f"\nrun {result.run_id}: {result.measured} point(s) measured"
        + (f", {result.reused} reused from the interrupted run" if result.reused else "")
        + f". Show again: hwfit results {result.run_id}"
    )


def _flag_settings(backend, device, precision, batch, threads, replicas, budget, processes) -> dict:
    settings: dict = {}
    for name, values in (("backends", backend), ("devices", device), ("precisions", precision)):
        if split_values(values):
            settings[name] = split_values(values)
    for name, values in (("batch_sizes", batch), ("threads", threads), ("replicas", replicas)):
        if split_values(values):
            try:
                settings[name] = [int(v) for v in split_values(values)]
            except ValueError:
                raise typer.BadParameter(f"--{name.split('_')[0]} takes integers, e.g. 1,8,32") from None
    if budget is not None:
        settings["budget_s"] = budget
    if processes is not None:
        settings["processes"] = processes
    return settings


class ProgressObserver:
    """Rich progress on stderr: the current point, its running estimate, and the time left."""

    def __init__(self, console: Console, disabled: bool = False):
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            console=console,
            disable=disabled,
        )
        self.task = None
        self.console = console
        self.disabled = disabled

    def __enter__(self):
        self.progress.start()
        self.task = self.progress.add_task("planning", total=None)
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.progress.stop()

    def planned(self, total_points: int) -> None:
        self.progress.update(self.task, total=total_points)

    def stage(self, text: str) -> None:
        self.progress.update(self.task, description=text)

    def point_started(self, variant) -> None:
        self.progress.update(self.task, description=f"{variant.key}: loading")

    def point_progress(self, variant, message: dict) -> None:
        if message.get("phase") == "measuring":
            text = f"{variant.key}: {message['runs']} runs, p50 {message['p50_ms']:.2f} ms, CI ±{message['ci']:.1%}"
        else:
            text = f"{variant.key}: {message.get('phase', '')}"
        self.progress.update(self.task, description=text)

    def point_finished(self, variant, measurement, reused: bool) -> None:
        self.progress.advance(self.task)
        if self.disabled:
            return
        style = STATUS_STYLE.get(measurement.status, "")
        rate = f"{measurement.samples_per_s:.1f}/s" if measurement.samples_per_s else ""
        suffix = " (reused)" if reused else ""
        why = f" — {measurement.reason}" if measurement.reason else ""
        self.progress.console.print(
            f"  [{style}]{measurement.status:8}[/] {variant.key} {rate}{suffix}{why}", highlight=False
        )

    def family_finished(self, family, skipped_points: int) -> None:
        self.progress.advance(self.task, skipped_points)


def _print_families(out: Console, result) -> None:
    out.print(
        "\n[bold]Batch-size sweet spots[/] (growth stops when throughput rises < 3%, memory runs out, "
        "or latency passes the cap):"
    )
    for family in result.families:
        if family.sweet_spot_batch is None:
            out.print(f"  [dim]{family.family}[/]: {family.stop_reason}", highlight=False)
            continue
        out.print(
            f"  {family.family}: batch {family.sweet_spot_batch}, {family.best_samples_per_s:.1f} samples/s "
            f"— {family.stop_reason}",
            highlight=False,
        )
