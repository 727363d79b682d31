"""`hwfit top [URL]`: a live view of a running `hwfit serve`, from its /metrics."""

import time

import typer
from rich.console import Console

from hwfit.cli._app import app


@app.command(
    epilog="Examples:\n\n"
    "  hwfit top                                  # the server on 127.0.0.1:8000, refreshed every second\n\n"
    "  hwfit top http://gpu-box:8000 --once       # one snapshot (two scrapes, --interval apart)"
)
def top(
    url: str = typer.Argument("http://127.0.0.1:8000", help="The server's HTTP address (or its /metrics URL)."),
    interval_s: float = typer.Option(1.0, "--interval", help="Seconds between scrapes (the rate window)."),
    once: bool = typer.Option(False, "--once", help="Print one snapshot and exit."),
    token: str | None = typer.Option(None, "--token", help="Bearer token, if the server requires one."),
) -> None:
    """Per pool: req/s, p50/p99 over the last window, mean batch, queue depth, shed/retried/rejected;
    per device: utilization, memory, power. Ctrl-C quits."""
    from hwfit.cli.top_view import render, scrape, snapshot

    console = Console()
    previous = scrape(url, token)
    if once:
        time.sleep(interval_s)
        console.print(render(snapshot(previous, scrape(url, token)), url))
        return
    from rich.live import Live

    with Live(console=console, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(interval_s)
                current = scrape(url, token)
                live.update(render(snapshot(previous, current), url), refresh=True)
                previous = current
        except KeyboardInterrupt:
            pass
