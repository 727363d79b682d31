"""The load generator of bench/serve_load.py, run in a process of its own (no GIL shared with a
server): aiohttp with keep-alive connections to one 127.0.0.1 URL, in one of two modes:

- open loop: Poisson arrivals at a fixed rate; each request's latency is timed from its *scheduled*
  send time, so a server that falls behind cannot hide its queue (no coordinated omission); a send
  that leaves more than LATE_MS after its schedule (the event loop or the in-flight cap held it
  back) is counted as late.
- closed loop: N clients, each sending its next request when the last one is answered.

Bounded: requests are only issued during warm-up + window, at most `max_requests` of them, each
with a timeout; whatever is still outstanding `drain_s` after the window is cancelled and counted.

    python bench/_load.py SPEC.json   ->  one JSON object on stdout
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import sys
import time

import aiohttp

LATE_MS = 2.0


class Recorder:
    """Per request: scheduled (open loop) or start time, actual send time, end time, outcome."""

    def __init__(self):
        self.records: list[tuple[float, float, float, str]] = []

    def add(self, scheduled: float, sent: float, ended: float, outcome: str) -> None:
        self.records.append((scheduled, sent, ended, outcome))


async def send_one(session, url, body, headers, timeout_s, scheduled, sent, recorder) -> None:
    try:
        async with session.post(url, data=body, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            await response.read()
            outcome = "ok" if response.status == 200 else f"http {response.status}"
    except asyncio.TimeoutError:
        outcome = "timeout"
    except aiohttp.ClientError as error:
        outcome = type(error).__name__
    recorder.add(scheduled, sent, time.perf_counter(), outcome)


async def open_loop(session, spec, bodies, recorder, t0: float) -> int:
    rng = random.Random(spec.get("seed", 0))
    duration_s = spec["warmup_s"] + spec["window_s"]
    in_flight = asyncio.Semaphore(spec["max_in_flight"])
    tasks = set()

    async def scheduled_send(index, scheduled):
        async with in_flight:
            sent = time.perf_counter()
            await send_one(session, spec["url"], bodies[index % len(bodies)], spec["headers"],
                           spec["timeout_s"], scheduled, sent, recorder)

    scheduled, index = t0, 0
    while index < spec["max_requests"]:
        scheduled += rng.expovariate(spec["rate"])
        if scheduled >= t0 + duration_s:
            break
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(scheduled_send(index, scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        index += 1
    return await drain(tasks, spec["drain_s"], recorder)


async def closed_loop(session, spec, bodies, recorder, t0: float) -> int:
    end = t0 + spec["warmup_s"] + spec["window_s"]
    issued = 0
    concurrency = spec["concurrency"]

    async def client(number):
        nonlocal issued
        index = number
        while time.perf_counter() < end and issued < spec["max_requests"]:
            issued += 1
            start = time.perf_counter()
            await send_one(session, spec["url"], bodies[index % len(bodies)], spec["headers"],
                           spec["timeout_s"], start, start, recorder)
            index += concurrency

    tasks = {asyncio.create_task(client(n)) for n in range(concurrency)}
    done, pending = await asyncio.wait(tasks, timeout=end - time.perf_counter() + spec["drain_s"])
    for task in pending:
        task.cancel()
    return len(pending)


async def drain(tasks, drain_s, recorder) -> int:
    """Wait for outstanding requests up to drain_s; cancel the rest and return how many."""
    if not tasks:
        return 0
    done, pending = await asyncio.wait(set(tasks), timeout=drain_s)
    for task in pending:
        task.cancel()
    return len(pending)


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    rank = min(len(sorted_values) - 1, max(0, round(q / 100.0 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def summarize(spec, recorder: Recorder, t0: float, cancelled: int) -> dict:
    """Figures over the measured window [t0 + warmup, t0 + warmup + window):
    throughput = OK answers that *ended* in the window / window length;
    latency and outcomes over requests *scheduled* (open) or *ended* (closed) in the window."""
    w0 = t0 + spec["warmup_s"]
    w1 = w0 + spec["window_s"]
    open_mode = spec["mode"] == "open"
    if open_mode:
        counted = [r for r in recorder.records if w0 <= r[0] < w1]
    else:
        counted = [r for r in recorder.records if w0 <= r[2] < w1]
    ok_latencies = sorted((ended - scheduled) * 1000.0 for scheduled, _, ended, outcome in counted if outcome == "ok")
    outcomes: dict[str, int] = {}
    for _, _, _, outcome in counted:
        if outcome != "ok":
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    rejects = sum(n for outcome, n in outcomes.items() if outcome in ("http 429", "http 503"))
    lateness_ms = [(sent - scheduled) * 1000.0 for scheduled, sent, _, _ in counted] if open_mode else []
    ok_in_window = sum(1 for _, _, ended, outcome in recorder.records if outcome == "ok" and w0 <= ended < w1)
    return {
        "mode": spec["mode"],
        "rate": spec.get("rate"),
        "concurrency": spec.get("concurrency"),
        "warmup_s": spec["warmup_s"],
        "window_s": spec["window_s"],
        "requests_total": len(recorder.records) + cancelled,
        "requests_counted": len(counted) + (cancelled if open_mode else 0),
        "offered_rps": (len(counted) + cancelled) / spec["window_s"] if open_mode else None,
        "throughput_rps": ok_in_window / spec["window_s"],
        "ok": len(ok_latencies),
        "p50_ms": percentile(ok_latencies, 50),
        "p90_ms": percentile(ok_latencies, 90),
        "p99_ms": percentile(ok_latencies, 99),
        "max_ms": ok_latencies[-1] if ok_latencies else None,
        "errors": sum(outcomes.values()) + cancelled,
        "rejects": rejects,
        "outcomes": outcomes,
        "cancelled_at_drain": cancelled,
        "late_sends": sum(1 for ms in lateness_ms if ms > LATE_MS) if open_mode else None,
        "max_late_ms": max(lateness_ms) if lateness_ms else None,
        "late_threshold_ms": LATE_MS,
    }


async def run(spec: dict) -> dict:
    bodies = [base64.b64decode(b) for b in spec["bodies_b64"]]
    if not spec["url"].startswith(("http://127.0.0.1:", "http://localhost:")):
        raise SystemExit(f"refusing to load {spec['url']}: this generator only targets 127.0.0.1")
    connections = spec["concurrency"] if spec["mode"] == "closed" else spec["max_in_flight"]
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    recorder = Recorder()
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.perf_counter() + 0.05
        if spec["mode"] == "open":
            cancelled = await open_loop(session, spec, bodies, recorder, t0)
        else:
            cancelled = await closed_loop(session, spec, bodies, recorder, t0)
    return summarize(spec, recorder, t0, cancelled)


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    print(json.dumps(asyncio.run(run(spec))))


if __name__ == "__main__":
    main()
