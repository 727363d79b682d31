"""Sending the load: open loop at the send times of a `Traffic`, or closed loop with N clients;
every request recorded (scheduled, sent, ended, outcome, status, the server's reason).

Open loop: each request's latency is timed from its *scheduled* send time, so a server that falls
behind cannot hide its queue (no coordinated omission); a request that leaves more than LATE_MS
after its schedule (the event loop or the in-flight cap held it back) is counted as late.
Closed loop: N clients, each on its own connection, sending the next request when the last one is
answered; latency from the send.

Bounded: requests are issued only during `duration_s` and at most `max_requests` of them, each with
a timeout; what is still outstanding `drain_s` after the last send time is cancelled and recorded
as cancelled. `run_load` runs the asyncio client in the calling thread: on a shared machine run it
in a process of its own (the `hwfit load` command is one), so that it shares no GIL with the server.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hwfit.core import Traffic, parse_traffic
from hwfit.load.client import Answer, Target
from hwfit.load.records import Record, outcome_of
from hwfit.load.summary import LoadResult
from hwfit.load.target import LoadError, Payload, build_payload, check_url

LATE_MS = 2.0
START_DELAY_S = 0.05  # between preparing the schedule and its first send time
PROGRESS_EVERY_S = 0.25

Progress = Callable[[float, int, int], None]  # (elapsed s, sent, ended)


@dataclass(frozen=True)
class LoadConfig:
    """One load run. `traffic` (a spec such as "poisson:50", or a Traffic) for open loop, or
    `concurrency` for closed loop; neither: closed loop with one client. `duration_s` is the whole
    sending period, warm-up included: the first `warmup_s` of it are sent but left out of the
    summary. `shape` overrides -1 dims ("NAME=D,D,..." strings or {name: dims}); `input_file` is a
    KServe v2 request JSON or a .npz (instead of random inputs from the model's metadata)."""

    url: str = "http://127.0.0.1:8000"
    model: str | None = None
    traffic: str | Traffic | None = None
    concurrency: int | None = None
    duration_s: float = 10.0
    warmup_s: float = 1.0
    max_requests: int = 100_000
    timeout_s: float = 30.0
    binary: bool = False
    seed: int = 0
    shape: Sequence[str] | Mapping[str, Sequence[int]] | None = None
    input_file: str | Path | None = None
    drain_s: float = 5.0
    max_in_flight: int = 1024
    samples: int = 16  # distinct random request bodies, cycled
    allow_remote: bool = False
    token: str | None = None
    payload: Payload | None = None  # prepared requests: the URL, model and inputs above are not used

    def checked(self) -> LoadConfig:
        """Itself, or a LoadError naming the setting that is out of range."""
        if self.traffic is not None and self.concurrency is not None:
            raise LoadError("give either --traffic (open loop) or --concurrency (closed loop), not both")
        if self.concurrency is not None and not (isinstance(self.concurrency, int) and self.concurrency >= 1):
            raise LoadError(f"--concurrency {self.concurrency!r}: expected a whole number of clients >= 1")
        if not self.duration_s > 0:
            raise LoadError(f"--duration {self.duration_s!r}: expected seconds > 0")
        if not 0 <= self.warmup_s < self.duration_s:
            raise LoadError(
                f"--warmup {self.warmup_s!r}: expected 0 <= warm-up < duration ({self.duration_s:g} s): "
                "the summary covers the time after the warm-up"
            )
        for name, value in (("--max-requests", self.max_requests), ("--max-in-flight", self.max_in_flight)):
            if not (isinstance(value, int) and value >= 1):
                raise LoadError(f"{name} {value!r}: expected a whole number >= 1")
        for name, value in (("--timeout", self.timeout_s), ("--drain", self.drain_s)):
            if not value > 0:
                raise LoadError(f"{name} {value!r}: expected seconds > 0")
        return self

    @property
    def mode(self) -> str:
        return "open" if self.traffic is not None else "closed"

    @property
    def clients(self) -> int:
        return self.concurrency or 1


def run_load(config: LoadConfig, progress: Progress | None = None) -> LoadResult:
    """Prepare the requests (unless `config.payload` holds them), send the load, return every
    request's record. Synchronous: runs its own asyncio loop in this thread."""
    config = config.checked()
    traffic = parse_traffic(config.traffic) if config.traffic is not None else None
    payload = config.payload or build_payload(
        config.url,
        config.model,
        binary=config.binary,
        shape=config.shape,
        input_file=config.input_file,
        token=config.token,
        seed=config.seed,
        samples=config.samples,
        allow_remote=config.allow_remote,
        timeout_s=min(config.timeout_s, 30.0),
    )
    if config.payload is not None:
        check_url(config.payload.url, config.allow_remote)  # prepared requests go to loopback too, unless allowed
    schedule = None
    if traffic is not None:
        schedule = traffic.arrivals(config.duration_s, config.seed)[: config.max_requests].tolist()
    cpu_started = time.process_time()
    records = asyncio.run(_drive(config, payload, schedule, progress))
    client_cpu_s = time.process_time() - cpu_started  # this process's CPU while sending (every thread)
    return LoadResult(
        records=records,
        mode=config.mode,
        traffic=traffic.spec if traffic is not None else None,
        concurrency=config.clients if traffic is None else None,
        duration_s=config.duration_s,
        warmup_s=config.warmup_s,
        url=payload.url,
        model=payload.model,
        model_how=payload.model_how,
        inputs=payload.description,
        planned_requests=len(schedule) if schedule is not None else None,
        late_threshold_ms=LATE_MS,
        client_cpu_s=client_cpu_s,
    )


@dataclass
class _Run:
    """Shared state of one run: the target, the records, the clock."""

    target: Target
    timeout_s: float
    t0: float
    records: list[Record] = field(default_factory=list)
    sent: int = 0

    def now(self) -> float:
        return time.perf_counter() - self.t0

    async def send(self, index: int, scheduled_s: float | None, wait: asyncio.Semaphore | None = None) -> None:
        """Send request `index` and record how it ended; a cancelled one (at the drain) is recorded too.
        `scheduled_s` None: scheduled at the send (closed loop)."""
        sent_s = None
        try:
            if wait is not None:
                async with wait:
                    sent_s = self.now()
                    self.sent += 1
                    answer = await self.target.post(index, self.timeout_s)
            else:
                sent_s = scheduled_s = self.now()
                self.sent += 1
                answer = await self.target.post(index, self.timeout_s)
        except asyncio.CancelledError:
            self.records.append(
                Record(index, scheduled_s, sent_s, self.now(), "cancelled", 0, "cancelled at the drain")
            )
            raise
        self.records.append(_record(index, scheduled_s, sent_s, self.now(), answer))


def _record(index: int, scheduled_s: float, sent_s: float, ended_s: float, answer: Answer) -> Record:
    outcome, reason = outcome_of(answer.status, answer.body, answer.failure)
    return Record(index, scheduled_s, sent_s, ended_s, outcome, answer.status, reason)


async def _drive(config: LoadConfig, payload: Payload, schedule: list[float] | None, progress: Progress | None):
    target = Target(payload.url, dict(payload.headers), list(payload.bodies))
    run = _Run(target, config.timeout_s, time.perf_counter() + START_DELAY_S)
    reporter = asyncio.create_task(_report_progress(run, progress)) if progress else None
    try:
        if schedule is not None:
            await _open_loop(run, schedule, config)
        else:
            await _closed_loop(run, config)
    finally:
        target.close()
        if reporter is not None:
            reporter.cancel()
            progress(run.now(), run.sent, len(run.records))
    return sorted(run.records, key=lambda record: record.index)


async def _report_progress(run: _Run, progress: Progress) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        progress(max(0.0, run.now()), run.sent, len(run.records))


async def _open_loop(run: _Run, schedule: list[float], config: LoadConfig) -> None:
    in_flight = asyncio.Semaphore(config.max_in_flight)
    tasks: set[asyncio.Task] = set()
    for index, scheduled_s in enumerate(schedule):
        delay = scheduled_s - run.now()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(run.send(index, scheduled_s, in_flight))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    drain_until = max(config.duration_s, run.now()) + config.drain_s
    await _drain(tasks, drain_until - run.now())


async def _closed_loop(run: _Run, config: LoadConfig) -> None:
    issued = 0
    clients = config.clients

    async def client(number: int) -> None:
        nonlocal issued
        index = number
        while run.now() < config.duration_s and issued < config.max_requests:
            issued += 1
            await run.send(index, None)
            index += clients

    delay = -run.now()
    if delay > 0:
        await asyncio.sleep(delay)
    tasks = {asyncio.create_task(client(n)) for n in range(clients)}
    await _drain(tasks, config.duration_s - run.now() + config.drain_s)


async def _drain(tasks: set[asyncio.Task], drain_s: float) -> None:
    """Wait for outstanding requests up to drain_s; cancel the rest (each records itself)."""
    if not tasks:
        return
    _, pending = await asyncio.wait(set(tasks), timeout=max(drain_s, 0.0))
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


def load_json(result: LoadResult) -> str:
    """The run as JSON for machines: settings, summary (records left out; --records has them)."""
    return json.dumps(result.to_dict(), indent=2)
