"""The load generator of bench/serve_load.py, run in a process of its own (no GIL shared with a
server): `hwfit.load` (the client `hwfit load` runs; see hwfit/load/runner.py) sending the bench's
prepared bodies, in one of two modes:

- open loop: Poisson arrivals at a fixed rate (`hwfit.core` Poisson traffic, seeded: the same
  schedule for every server); each request's latency is timed from its *scheduled* send time, so a
  server that falls behind cannot hide its queue (no coordinated omission); a send that leaves more
  than LATE_MS after its schedule (the event loop or the in-flight cap held it back) is late.
- closed loop: N clients, each on its own connection, sending its next request when the last one
  is answered.

Bounded: requests are only issued during warm-up + window, at most `max_requests` of them, each
with a timeout; whatever is still outstanding `drain_s` after the window is cancelled and counted.
This file only turns the bench's spec into a `LoadConfig` and the result into the bench's summary.

    python bench/_load.py SPEC.json   ->  one JSON object on stdout
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

try:
    import hwfit  # noqa: F401 - only checks that hwfit is installed; else the checkout is put on sys.path
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwfit.core import Poisson  # noqa: E402 - after the sys.path fallback above
from hwfit.load import LATE_MS, LoadConfig, LoadResult, Payload, is_loopback, run_load  # noqa: E402 - likewise

__all__ = ["LATE_MS", "run"]


def run(spec: dict) -> dict:
    """One load run as the spec says; its summary in the bench's keys."""
    from urllib.parse import urlsplit

    if not spec["url"].startswith("http://") or not is_loopback(urlsplit(spec["url"]).hostname or ""):
        raise SystemExit(f"refusing to load {spec['url']}: this generator only targets 127.0.0.1")
    bodies = tuple(base64.b64decode(b) for b in spec["bodies_b64"])
    payload = Payload(spec["url"], dict(spec["headers"]), bodies, f"{len(bodies)} bench request bodies")
    open_mode = spec["mode"] == "open"
    config = LoadConfig(
        url=spec["url"],
        traffic=Poisson(spec=f"poisson:{spec['rate']:g}", rate_rps=float(spec["rate"])) if open_mode else None,
        concurrency=None if open_mode else int(spec["concurrency"]),
        duration_s=spec["warmup_s"] + spec["window_s"],
        warmup_s=spec["warmup_s"],
        max_requests=int(spec["max_requests"]),
        timeout_s=spec["timeout_s"],
        drain_s=spec["drain_s"],
        max_in_flight=int(spec.get("max_in_flight", 1024)),
        seed=int(spec.get("seed", 0)),
        payload=payload,
    )
    return bench_summary(spec, run_load(config))


def bench_summary(spec: dict, result: LoadResult) -> dict:
    """hwfit.load's summary under the keys serve_load.py's tables read (unchanged since the bench
    had its own client): `errors` counts every non-200 outcome plus the cancelled, `outcomes` the
    non-200 ones by HTTP status ("http 429") or failure ("timeout")."""
    summary = result.summary()
    open_mode = spec["mode"] == "open"
    outcomes: dict[str, int] = {}
    for record in result.counted():
        if record.outcome in ("ok", "cancelled"):
            continue
        key = f"http {record.status}" if record.status else record.reason
        outcomes[key] = outcomes.get(key, 0) + 1
    return {
        "mode": spec["mode"],
        "rate": spec.get("rate"),
        "concurrency": spec.get("concurrency"),
        "warmup_s": spec["warmup_s"],
        "window_s": spec["window_s"],
        "requests_total": summary["requests"],
        "requests_counted": summary["counted"],
        "offered_rps": summary["offered_rps"] if open_mode else None,
        "throughput_rps": summary["answered_rps"],
        "ok": summary["ok"],
        "p50_ms": summary["p50_ms"],
        "p90_ms": summary["p90_ms"],
        "p99_ms": summary["p99_ms"],
        "max_ms": summary["max_ms"],
        "errors": sum(outcomes.values()) + summary["cancelled_total"],
        "rejects": summary["rejected"],
        "outcomes": outcomes,
        "cancelled_at_drain": summary["cancelled_total"],
        "late_sends": summary["late"] if open_mode else None,
        "max_late_ms": summary["max_late_ms"] if open_mode else None,
        "late_threshold_ms": LATE_MS,
        "client_cpu_s": summary["client_cpu_s"],
        "client_cpu_ms_per_request": summary["client_cpu_ms_per_request"],
    }


def main() -> None:
    with open(sys.argv[1]) as spec_file:
        spec = json.load(spec_file)
    print(json.dumps(run(spec)))


if __name__ == "__main__":
    main()
