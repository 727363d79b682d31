"""The load generator of bench/serve_load.py, run in a process of its own (no GIL shared with a
server): a lean HTTP/1.1 client on asyncio protocols (keep-alive connections to one 127.0.0.1 URL,
each request's bytes built once) in one of two modes:

- open loop: Poisson arrivals at a fixed rate; each request's latency is timed from its *scheduled*
  send time, so a server that falls behind cannot hide its queue (no coordinated omission); a send
  that leaves more than LATE_MS after its schedule (the event loop or the in-flight cap held it
  back) is counted as late.
- closed loop: N clients, each on its own connection, sending its next request when the last one
  is answered.

Why not aiohttp's client: the generator shares the machine with the server it measures, and on a
2-core machine aiohttp's ~0.7 ms of CPU per request is taken from the server (Triton's perf_analyzer
is C++ for the same reason). This client costs a fraction of that; every server gets the same one.

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
from collections import deque
from urllib.parse import urlsplit

LATE_MS = 2.0
MAX_HEADER_BYTES = 64 * 1024


class Recorder:
    """Per request: scheduled (open loop) or start time, actual send time, end time, outcome."""

    def __init__(self):
        self.records: list[tuple[float, float, float, str]] = []

    def add(self, scheduled: float, sent: float, ended: float, outcome: str) -> None:
        self.records.append((scheduled, sent, ended, outcome))


class ProtocolError(Exception):
    """The server's bytes are not an HTTP/1.1 response this client understands."""


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection, one request at a time: `send(raw)` -> the response's status code
    once its whole body has arrived (Content-Length or chunked)."""

    def __init__(self):
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future | None = None
        self._status = 0
        self._body_left: int | None = None  # bytes of body still to come; None: chunked
        self._in_body = False
        self._keep_alive = True

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(cls, host, port)
        return connection

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, raw: bytes) -> asyncio.Future:
        if self._waiter is not None and not self._waiter.done():
            raise RuntimeError("one request at a time on a connection")
        self._waiter = asyncio.get_running_loop().create_future()
        self._in_body = False
        self.transport.write(raw)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            self._parse()
        except (ProtocolError, ValueError) as error:  # ValueError: a length that is not a number
            self._finish(ProtocolError(str(error)))
            self.close()

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionResetError("the server closed the connection mid-response"))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # --- parsing

    def _parse(self) -> None:
        if not self._in_body:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEADER_BYTES:
                    raise ProtocolError("response headers too long")
                return
            self._read_head(bytes(self._buffer[:end]).decode("latin-1"))
            del self._buffer[: end + 4]
            self._in_body = True
        if self._body_left is not None:
            if len(self._buffer) < self._body_left:
                return
            del self._buffer[: self._body_left]
            self._finish(None)
        else:
            self._parse_chunks()

    def _read_head(self, head: str) -> None:
        status_line, *lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {status_line[:80]!r}")
        self._status = int(parts[1])
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self._keep_alive = headers.get("connection", "").lower() != "close" and parts[0] != "HTTP/1.0"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._body_left = None
        elif "content-length" in headers:
            self._body_left = int(headers["content-length"])
        elif self._status in (204, 304) or 100 <= self._status < 200:
            self._body_left = 0
        else:
            raise ProtocolError("a response with neither Content-Length nor chunked encoding")

    def _parse_chunks(self) -> None:
        while True:
            line_end = self._buffer.find(b"\r\n")
            if line_end < 0:
                return
            size = int(bytes(self._buffer[:line_end]).split(b";")[0], 16)
            if size == 0:  # last chunk, then (no trailers here) an empty line
                if len(self._buffer) < line_end + 4:
                    return
                del self._buffer[: line_end + 4]
                self._finish(None)
                return
            if len(self._buffer) < line_end + 2 + size + 2:
                return
            del self._buffer[: line_end + 2 + size + 2]

    def _finish(self, error: Exception | None) -> None:
        self._in_body = False
        if not self._keep_alive:
            self.close()
        if self._waiter is not None and not self._waiter.done():
            if error is None:
                self._waiter.set_result(self._status)
            else:
                self._waiter.set_exception(error)


class Target:
    """The URL's connections: idle ones are reused, a broken one is replaced."""

    def __init__(self, url: str, headers: dict[str, str], bodies: list[bytes]):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        head = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}"]
        head += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "content-length"]
        self.requests = [
            ("\r\n".join(head + [f"Content-Length: {len(body)}"]) + "\r\n\r\n").encode() + body for body in bodies
        ]
        self._idle: deque[HttpConnection] = deque()

    async def post(self, index: int, timeout_s: float) -> str:
        """Send request `index` (modulo the bodies); its outcome: ok, http NNN, timeout, or an error's name."""
        connection = None
        try:
            connection = await self._connection()
            status = await asyncio.wait_for(connection.send(self.requests[index % len(self.requests)]), timeout_s)
            outcome = "ok" if status == 200 else f"http {status}"
        except asyncio.TimeoutError:
            outcome = "timeout"
        except (OSError, ProtocolError, ValueError) as error:
            outcome = type(error).__name__
        if connection is not None:
            if not connection.closed and (outcome == "ok" or outcome.startswith("http ")):
                self._idle.append(connection)
            else:
                connection.close()  # timed out mid-response, or broken: never reused
        return outcome

    async def _connection(self) -> HttpConnection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        return await HttpConnection.open(self.host, self.port)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


async def send_one(
    target: Target, index: int, timeout_s: float, scheduled: float, sent: float, recorder: Recorder
) -> None:
    outcome = await target.post(index, timeout_s)
    recorder.add(scheduled, sent, time.perf_counter(), outcome)


async def open_loop(target: Target, spec, recorder, t0: float) -> int:
    rng = random.Random(spec.get("seed", 0))
    duration_s = spec["warmup_s"] + spec["window_s"]
    in_flight = asyncio.Semaphore(spec["max_in_flight"])
    tasks = set()

    async def scheduled_send(index, scheduled):
        async with in_flight:
            await send_one(target, index, spec["timeout_s"], scheduled, time.perf_counter(), recorder)

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


async def closed_loop(target: Target, spec, recorder, t0: float) -> int:
    end = t0 + spec["warmup_s"] + spec["window_s"]
    issued = 0
    concurrency = spec["concurrency"]

    async def client(number):
        nonlocal issued
        index = number
        while time.perf_counter() < end and issued < spec["max_requests"]:
            issued += 1
            start = time.perf_counter()
            await send_one(target, index, spec["timeout_s"], start, start, recorder)
            index += concurrency

    tasks = {asyncio.create_task(client(n)) for n in range(concurrency)}
    return await drain(tasks, end - time.perf_counter() + spec["drain_s"], recorder)


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
    target = Target(spec["url"], spec["headers"], bodies)
    recorder = Recorder()
    try:
        t0 = time.perf_counter() + 0.05
        if spec["mode"] == "open":
            cancelled = await open_loop(target, spec, recorder, t0)
        else:
            cancelled = await closed_loop(target, spec, recorder, t0)
    finally:
        target.close()
    return summarize(spec, recorder, t0, cancelled)


def main() -> None:
    with open(sys.argv[1]) as spec_file:
        spec = json.load(spec_file)
    print(json.dumps(asyncio.run(run(spec))))


if __name__ == "__main__":
    main()
