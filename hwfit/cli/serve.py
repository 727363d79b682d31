"""`hwfit serve PLAN.yaml | MODEL`: serve a plan (or a model on a default plan) over KServe v2 HTTP and
gRPC, with dynamic batching, predicted-completion routing, fallback and Prometheus metrics."""

import asyncio
import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hwfit.cli._app import app, ray_option

PLAN_SUFFIXES = (".yaml", ".yml")
# serve.default_plan's DEFAULT_STARTUP_BUDGET_S, not imported so that `hwfit --help` loads no backend
# (tests/cli/test_serve.py keeps the two equal)
DEFAULT_STARTUP_BUDGET_S = 6.0


@app.command(
    epilog="Examples:\n\n"
    "  hwfit serve plan.yaml                          # the pools a plan chose\n\n"
    "  hwfit serve minilm                             # a model: layout and max batch searched at start-up\n\n"
    "  hwfit serve minilm --startup-budget-s 15       # a longer start-up search\n\n"
    "  hwfit serve plan.yaml --host 0.0.0.0 --token s3cret --cache-mb 256\n\n"
    "  hwfit serve plan.yaml --ray                    # each pool's replicas as Ray actors on its node group"
)
def serve(
    target: str = typer.Argument(..., help="A plan file (hwfit plan's YAML) or a MODEL (built-in, .onnx, ...)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback unless you say so)."),
    http_port: int = typer.Option(8000, "--http-port", help="KServe v2 HTTP/REST port (0: any free port)."),
    grpc_port: int = typer.Option(8001, "--grpc-port", help="KServe v2 gRPC port (0: any free port)."),
    token: str | None = typer.Option(
        None, "--token", help="Require 'Authorization: Bearer TOKEN' on every endpoint but the health probes."
    ),
    max_request_mb: float = typer.Option(64.0, "--max-request-mb", help="Largest request body accepted, MiB."),
    cache_mb: float = typer.Option(
        0.0, "--cache-mb", help="Result cache size in MiB (0: off). Identical inputs are answered from it."
    ),
    startup_budget_s: float = typer.Option(
        DEFAULT_STARTUP_BUDGET_S,
        "--startup-budget-s",
        help="For a MODEL (no plan): seconds the start-up search may spend measuring layouts "
        "(replicas x threads) and batch sizes; a model too slow for it gets a safe layout.",
    ),
    drain_s: float = typer.Option(
        10.0, "--drain-s", help="On Ctrl-C/SIGTERM: how long accepted requests may take to finish."
    ),
    ray: str | None = ray_option("Run each pool's replicas as Ray actors on the plan's node groups,"),
) -> None:
    """Serve a plan: one worker process per replica, a dynamic batcher per pool, requests routed to
    the pool predicted to answer first; requests no pool can answer in time are refused at once.
    Ctrl-C stops accepting, answers what was accepted, then exits."""
    from hwfit.serve import (
        DispatcherConfig,
        PlanDispatcher,
        PoolConfig,
        ServerConfig,
        freeze_startup_heap,
        run_server,
    )

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    console = Console()
    if ray is not None and Path(target).suffix not in PLAN_SUFFIXES:
        raise typer.BadParameter("--ray serves a plan file (hwfit plan's YAML), not a bare MODEL", param_hint="--ray")
    pool_config = PoolConfig()
    if ray is not None:
        from hwfit.cluster import connect, ray_worker_factory

        connect(ray)  # before any pool starts: Ray missing or unreachable is said at once
    plan, model = _plan_and_model(target, console, startup_budget_s)
    if ray is not None:
        pool_config = PoolConfig(worker_factory=ray_worker_factory(plan, ray))
    dispatcher = PlanDispatcher(plan, model, DispatcherConfig(cache_bytes=int(cache_mb * 2**20), pool=pool_config))
    config = ServerConfig(
        host=host,
        http_port=http_port,
        grpc_port=grpc_port,
        token=token,
        max_request_bytes=int(max_request_mb * 2**20),
        drain_s=drain_s,
    )

    def started(addresses) -> None:
        console.print(
            f"serving [bold]{escape(plan.model.name)}[/] — HTTP {addresses.http_url}  "
            f"gRPC {addresses.grpc_url}  metrics {addresses.http_url}/metrics"
        )
        console.print(_pools_table(dispatcher))
        if ray is not None:
            for pool in plan.pools:
                where = f"node group {pool.node_group}" if pool.node_group else "any node"
                console.print(f"pool {escape(pool.name)}: replicas are Ray actors on {escape(where)}", soft_wrap=True)
        console.print("Ctrl-C stops accepting, answers what was accepted, then exits.")
        freeze_startup_heap()

    asyncio.run(run_server(dispatcher, config, on_started=started))
    console.print("stopped: every accepted request was answered or told why not.")


def _plan_and_model(target: str, console: Console, budget_s: float):
    from hwfit.models import load_model
    from hwfit.plan import load_plan
    from hwfit.serve import default_plan

    if Path(target).suffix in PLAN_SUFFIXES:
        return load_plan(target), None
    model = load_model(target)
    console.print(
        f"[yellow]no plan given:[/] searching the layout and max batch of {escape(model.name)} "
        f"within a {budget_s:g} s start-up budget (--startup-budget-s) ..."
    )
    with console.status("measuring") as status:
        chosen = default_plan(model, budget_s, on_progress=lambda text: status.update(escape(text)))
    console.print(f"[yellow]default plan:[/] {escape(chosen.description)}")
    console.print(_search_table(chosen.search))
    return chosen.plan, model


def _search_table(search) -> Table:
    """What the start-up search measured: capacity per layout and batch size; the choice marked."""
    table = Table(title="start-up search (req/s measured capacity, replicas running together)", title_justify="left")
    batches = sorted({batch for times in search.measured for batch in times.service_ms})
    table.add_column("layout")
    for batch in batches:
        table.add_column(f"b{batch}", justify="right")
    for times in search.measured:
        cells = []
        for batch in batches:
            if batch not in times.service_ms:
                cells.append("-")
                continue
            text = f"{times.capacity_rps(batch):.0f}"
            if times.layout == search.chosen.layout and batch == search.chosen.max_batch:
                text = f"[bold green]{text}*[/]"
            cells.append(text)
        table.add_row(times.layout.text, *cells)
    return table


def _pools_table(dispatcher) -> Table:
    table = Table(title="pools", title_justify="left")
    for column in ("pool", "role", "variant", "device", "replicas", "max batch", "delay ms", "state"):
        table.add_column(column)
    for pool in dispatcher.pool_summaries():
        device = pool.device + (" (EMULATED)" if pool.emulated else "")
        group = dispatcher.plan.pool(pool.name).node_group
        device += f" on node group {group}" if group else ""
        state = "[green]up[/]" if pool.up else f"[red]DOWN[/] {escape(pool.down_reason or '')}"
        role = pool.role + (" (degraded tier)" if pool.degraded else "")
        table.add_row(
            pool.name,
            role,
            pool.variant,
            device,
            f"{pool.ready_replicas}/{pool.replicas}",
            str(pool.max_batch_size),
            f"{pool.max_queue_delay_ms:g}",
            state,
        )
    return table
