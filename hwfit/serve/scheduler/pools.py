"""A pool: the replicas of one plan pool (one worker process each), fed by one dynamic batcher.

The pool admits requests into its queue, runs each batch on a free replica, answers the batch's
requests, and supervises its workers: a worker that fails is restarted with exponential backoff;
a device whose workers fail repeatedly is marked down for a while, and when no device of the
pool is left its queued requests are handed back for rerouting (the plan's fallback chain).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from hwfit.core import Device, Variant
from hwfit.models import InputSpec
from hwfit.plan import PoolPlan
from hwfit.serve.api import DeadlineExceeded, InternalError, Rejected, level_of
from hwfit.serve.scheduler.batcher import (
    DynamicBatcher,
    Job,
    QueueFull,
    pack_batch,
    slice_outputs,
)
from hwfit.serve.scheduler.metrics import ServeMetrics
from hwfit.serve.scheduler.router import Lateness, OnlineCurve
from hwfit.serve.scheduler.workers import WatchdogPolicy, Worker, WorkerFailure, WorkerSpec
from hwfit.simulate import QUEUE_BATCHES_PER_REPLICA, ArrivalRate, PoolLoad, predict_completion_s, queue_bound_samples

log = logging.getLogger("hwfit.serve")

DEGRADED = "degraded"


@dataclass(frozen=True)
class HealthPolicy:
    """When a device is marked down, and for how long."""

    failures_to_mark_down: int = 3
    failure_window_s: float = 60.0
    down_for_s: float = 30.0


# Makes the handle on one replica: (spec, watchdog, input bytes, output bytes) -> a `Worker` or any
# object with its methods and attributes (hwfit.cluster's `RayWorker` places the replica as a Ray actor).
WorkerFactory = Callable[[WorkerSpec, WatchdogPolicy, int, int], Worker]


@dataclass(frozen=True)
class PoolConfig:
    watchdog: WatchdogPolicy = WatchdogPolicy()
    health: HealthPolicy = HealthPolicy()
    queue_batches_per_replica: int = QUEUE_BATCHES_PER_REPLICA  # queue bound: at least this many full batches per
    # replica, and at least what the pool serves within the default deadline (None: no deadline)
    default_deadline_s: float | None = None
    worker_factory: WorkerFactory | None = None  # None: each replica a local worker process (`Worker`)


@dataclass
class DeviceHealth:
    """One unit of a pool's device (cuda:1, or the CPU), with its recent worker failures."""

    label: str  # cuda:1, cpu, emulated:fast[0]
    device: str  # what the variant runs on
    failures: deque = field(default_factory=deque)
    down_until: float = 0.0
    reason: str | None = None

    def is_down(self, now: float) -> bool:
        return now < self.down_until

    def record_failure(self, now: float, reason: str, policy: HealthPolicy) -> bool:
        """Count a failure; True when this one marks the device down."""
        self.failures.append(now)
        while self.failures and self.failures[0] < now - policy.failure_window_s:
            self.failures.popleft()
        if len(self.failures) < policy.failures_to_mark_down:
            return False
        self.down_until = now + policy.down_for_s
        self.reason = (
            f"{len(self.failures)} worker failures in {policy.failure_window_s:g} s "
            f"(last: {reason}); marked down for {policy.down_for_s:g} s"
        )
        self.failures.clear()
        return True


@dataclass
class Slot:
    """One replica's place in the pool: its worker, its device unit and its recent record."""

    worker: Worker
    unit: DeviceHealth
    consecutive_failures: int = 0
    busy_since: float | None = None
    busy_predicted_s: float = 0.0
    restart_at: float | None = None
    freed_at: float | None = None  # when it last finished a batch with more work queued behind it


@dataclass
class JobResult:
    """What a pool hands back for one job."""

    pool: str
    outputs: dict
    compute_s: float
    batch_size: int


def queue_limit_samples(plan: PoolPlan, config: PoolConfig) -> int:
    """The pool's queue bound in samples (`simulate.queue_bound_samples`: the simulator uses the same rule)."""
    return queue_bound_samples(
        plan.service_ms, plan.replicas, plan.max_batch_size, config.default_deadline_s, config.queue_batches_per_replica
    )


def is_degraded(plan: PoolPlan) -> bool:
    """A degraded-tier pool (`tier: degraded` in the plan)."""
    return plan.tier == DEGRADED


def device_units(plan: PoolPlan) -> list[DeviceHealth]:
    """The units a pool spreads over: cuda:N, cuda:N+1, ... for GPUs; one named unit per count otherwise."""
    device = Device.parse(plan.device)
    if device.is_gpu:
        return [DeviceHealth(unit.name, unit.name) for unit in device.offset(plan.devices)]
    if plan.devices == 1:
        return [DeviceHealth(plan.device, plan.device)]
    return [DeviceHealth(f"{plan.device}[{i}]", plan.device) for i in range(plan.devices)]


def pool_variant(plan: PoolPlan, device: str) -> Variant:
    """The plan's variant on one device unit, with the pool's knobs and max batch size."""
    base = Variant.parse(plan.variant)
    knobs = {**dict(base.knobs), **plan.knobs}
    threads = plan.threads if plan.threads is not None else base.threads
    return Variant(plan.backend, device, plan.precision, plan.max_batch_size, threads, tuple(knobs.items()))


Reroute = Callable[[Job, str, WorkerFailure | None], None]


class Pool:
    """See module docstring. Runs on the dispatcher's asyncio loop."""

    def __init__(
        self,
        plan: PoolPlan,
        model_source: str,
        input_spec: InputSpec,
        output_dims: Mapping[str, Mapping[int, str]],
        metrics: ServeMetrics,
        reroute: Reroute,
        config: PoolConfig = PoolConfig(),
        io_bytes: tuple[int, int] = (1 << 20, 1 << 20),
        one_request_per_batch: bool = False,
    ):
        self.plan = plan
        self.name = plan.name
        self.role = plan.role
        self.degraded = is_degraded(plan)
        self.max_batch_size = plan.max_batch_size
        self.config = config
        self.curve = OnlineCurve(plan.service_ms)
        self.arrivals = ArrivalRate()
        self.lateness = Lateness()
        self.input_spec = input_spec
        self.output_dims = output_dims
        self.metrics = metrics
        self.reroute = reroute
        limit = queue_limit_samples(plan, config)
        self.batcher = DynamicBatcher(
            plan.max_batch_size,
            plan.max_queue_delay_ms / 1000.0,
            limit,
            one_request_per_batch,
            self.arrivals.rate,
            self._busy_replicas,
        )
        self.units = device_units(plan)
        self.slots = [
            self._slot(unit, index, model_source, io_bytes)
            for index, unit in enumerate(u for u in self.units for _ in range(plan.replicas_per_device))
        ]
        self.start_failure: str | None = None
        self.started = False
        self.running_batches = 0
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        metrics.describe_pool(self.name, self.role, plan.variant, plan.device)

    def _slot(self, unit: DeviceHealth, index: int, model_source: str, io_bytes: tuple[int, int]) -> Slot:
        spec = WorkerSpec(
            self.name, index, unit.device, model_source, self.input_spec, pool_variant(self.plan, unit.device)
        )
        make = self.config.worker_factory or Worker
        return Slot(make(spec, self.config.watchdog, *io_bytes), unit)

    # --- state the router reads

    def _busy_replicas(self) -> int:
        return self.running_batches

    @property
    def up(self) -> bool:
        now = time.perf_counter()
        return self.started and self.start_failure is None and any(not u.is_down(now) for u in self.units)

    @property
    def down_reason(self) -> str | None:
        if self.start_failure is not None:
            return self.start_failure
        if not self.started:
            return "not started"
        reasons = [f"{u.label}: {u.reason}" for u in self.units if u.reason and u.is_down(time.perf_counter())]
        return "; ".join(reasons) or None

    @property
    def ready_replicas(self) -> int:
        now = time.perf_counter()
        return sum(1 for s in self.slots if s.worker.state in ("ready", "busy") and not s.unit.is_down(now))

    def predict_s(self, batch_size: int) -> float:
        return self.curve.predict_s(batch_size)

    def lateness_s(self) -> float:
        return self.lateness.allowance_s()

    def has_room(self, samples: int, priority: int) -> bool:
        return self.batcher.has_room(samples, priority)

    def queue_text(self) -> str:
        return f"{self.batcher.queued_samples}/{self.batcher.limit_samples} samples queued"

    def load(self, priority: int) -> PoolLoad:
        now = time.perf_counter()
        busy = tuple(max(0.0, s.busy_since + s.busy_predicted_s - now) for s in self.slots if s.busy_since is not None)
        return PoolLoad(
            self.ready_replicas,
            busy,
            self._restart_delay_s(now),
            self.batcher.samples_ahead(priority),
            self.max_batch_size,
            self.batcher.max_queue_delay_s,
            self.arrivals.rate(now),
        )

    def _restart_delay_s(self, now: float) -> float | None:
        """Predicted time until a restarting replica is back: its backoff left + its last load time."""
        delays = []
        for slot in self.slots:
            if slot.unit.is_down(now) or slot.worker.state in ("ready", "busy"):
                continue
            load_s = slot.worker.info.load_s if slot.worker.info else self.config.watchdog.timeout_margin_s
            wait = 0.0 if slot.restart_at is None else max(0.0, slot.restart_at - now)
            delays.append(wait + load_s)
        return min(delays, default=None)

    def predicted_drain_s(self) -> float:
        """How long the queue would take to empty: a fair Retry-After for a full queue."""
        load = self.load(priority=-(2**62))
        return predict_completion_s(load, 1, self.predict_s)

    # --- lifecycle

    async def start(self) -> None:
        """Start every replica; the pool is down (with the reason) only if none comes up."""
        outcomes = await asyncio.gather(*(slot.worker.start() for slot in self.slots), return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        for slot, outcome in zip(self.slots, outcomes):
            if isinstance(outcome, WorkerFailure):
                self.metrics.worker_failed(self.name, outcome.kind)
                slot.consecutive_failures = 1
            elif isinstance(outcome, BaseException):
                slot.worker.last_failure = WorkerFailure("load", f"{type(outcome).__name__}: {outcome}")
        self.started = True
        if len(failures) == len(self.slots):
            reasons = sorted({str(f) for f in failures})
            self.start_failure = f"no replica started: {'; '.join(reasons)}"
            log.error("pool %s is down: %s", self.name, self.start_failure)
            await self._stop_workers()
        else:
            for failure in failures:
                log.warning("pool %s: %s (it will be restarted)", self.name, failure)
            self._tasks = [
                asyncio.create_task(self._serve_slot(slot), name=f"hwfit-{self.name}-{i}")
                for i, slot in enumerate(self.slots)
            ]
        self._publish_state()

    async def stop(self) -> None:
        """Stop batching (what is queued is dispatched without delay first), then stop the workers."""
        self.batcher.stop()
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stop_workers()
        self._publish_state()

    async def _stop_workers(self) -> None:
        await asyncio.gather(*(slot.worker.stop() for slot in self.slots), return_exceptions=True)

    # --- admission

    def submit(self, job: Job) -> None:
        """Queue `job` (the router chose this pool); sheds lower-priority jobs to make room."""
        now = time.perf_counter()
        try:
            shed = self.batcher.admit(job, now)
        except QueueFull as full:
            raise Rejected(
                f"pool {self.name}: {full}; retry later", retry_after_s=round(self.predicted_drain_s(), 3)
            ) from full
        job.pool = self.name
        self.arrivals.add(job.samples, now)
        for victim in shed:
            self._shed(victim, f"queue full: shed for a request of priority level {level_of(job.priority)}")
        if self.batcher.has_lower_priority_than(job.priority):
            self._shed_displaced(job.priority, now)
        self._publish_queue()

    def _shed_displaced(self, priority: int, now: float) -> None:
        """Lower-priority jobs that a higher-priority arrival pushed past their deadlines."""

        def still_in_time(job: Job, samples_ahead: int) -> bool:
            if job.deadline is None:
                return True
            load = self.load(job.priority)
            load = replace(load, samples_ahead=samples_ahead)
            return now + predict_completion_s(load, job.samples, self.predict_s) + self.lateness_s() <= job.deadline

        for victim in self.batcher.shed_lower(priority, still_in_time):
            self._shed(
                victim, f"displaced by requests of priority level {level_of(priority)} and would now miss its deadline"
            )

    def _shed(self, job: Job, why: str) -> None:
        self.metrics.request_refused(self.name, "shed", "shed")
        job.fail(
            Rejected(
                f"shed by pool {self.name}: {why}; retry later",
                retry_after_s=round(max(0.05, self.predicted_drain_s()), 3),
            )
        )

    def evacuate(self) -> list[Job]:
        """Take every queued job out (the pool is going down)."""
        jobs = self.batcher.take_all()
        self._publish_queue()
        return jobs

    # --- serving

    async def _serve_slot(self, slot: Slot) -> None:
        while not self._stopping.is_set():
            if not slot.worker.ready:
                await self._restart(slot)
                continue
            # work already due goes to the worker at once: through the event loop it would wait
            # behind the encoding of the answers the last batch just produced
            batch = self.batcher.take_due(time.perf_counter()) or await self._next_batch_or_death(slot)
            if isinstance(batch, WorkerFailure):  # it died while idle
                self._worker_failed(slot, batch)
                continue
            if batch is None:
                return
            self._answer_expired(batch.expired)
            if not batch.jobs:
                continue
            if not slot.worker.ready:
                self.batcher.requeue(batch.jobs)
                continue
            self._publish_queue()
            await self._execute(slot, batch.jobs)

    async def _next_batch_or_death(self, slot: Slot):
        """The next batch, None once the batcher stops, or the failure of a worker that died idle."""
        batch_task = asyncio.ensure_future(self.batcher.next_batch())
        death_task = asyncio.ensure_future(slot.worker.died.wait())
        try:
            await asyncio.wait({batch_task, death_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            death_task.cancel()
            if not batch_task.done():
                batch_task.cancel()
                await asyncio.gather(batch_task, return_exceptions=True)
        if not batch_task.cancelled():
            return batch_task.result()  # a batch taken as the worker died goes back to the queue below
        return slot.worker.last_failure or WorkerFailure("died", f"worker {slot.worker.spec.label} died")

    async def _execute(self, slot: Slot, jobs: list[Job]) -> None:
        try:
            packed = pack_batch(jobs, self.input_spec)
        except (ValueError, KeyError) as error:
            self._fail_all(jobs, f"pool {self.name} could not pack a batch: {error}")
            return
        predicted_s = self.curve.predict_s(packed.size)
        slot.busy_since, slot.busy_predicted_s = time.perf_counter(), predicted_s
        self.running_batches += 1
        try:
            result = await slot.worker.run(packed.inputs, predicted_s)
        except WorkerFailure as failure:
            self._worker_failed(slot, failure)
            for job in jobs:
                self.reroute(job, self.name, failure)
            return
        finally:
            slot.busy_since = None
            self.running_batches -= 1
        try:
            self._deliver(slot, jobs, packed, result)
        except Exception as error:  # outputs that cannot be split back: answer with the reason, never hang
            log.exception("pool %s: could not deliver a batch's outputs", self.name)
            self._fail_all(
                jobs,
                f"pool {self.name} could not split the batch's outputs back per request: "
                f"{type(error).__name__}: {error}",
            )

    def _deliver(self, slot: Slot, jobs: list[Job], packed, result) -> None:
        now = time.perf_counter()
        elapsed_s = now - jobs[0].dispatched_at
        parts = slice_outputs(result.outputs, packed, jobs, self.output_dims)
        self.curve.observe(packed.size, elapsed_s + self._turnaround_s(slot, jobs[0]))
        slot.freed_at = now if len(self.batcher) else None
        slot.consecutive_failures = 0
        self.metrics.batch_executed(
            self.name, packed.size, packed.padded_elements, result.oom_splits, self.curve.ratio(packed.size)
        )
        for job, outputs in zip(jobs, parts):
            if job.predicted_completion is not None and not job.retried:  # a retry's delay is the fault's
                self.lateness.add(now - job.predicted_completion)
            job.succeed(JobResult(self.name, outputs, elapsed_s, packed.size))

    @staticmethod
    def _turnaround_s(slot: Slot, first: Job) -> float:
        """Time a busy replica stood idle between its last batch and this one (the event loop's and
        the IPC's overhead): part of what each batch costs while work is queued, so it is learned too."""
        if slot.freed_at is None or first.formation_started is None:
            return 0.0
        return max(0.0, first.formation_started - slot.freed_at)

    def _fail_all(self, jobs: list[Job], reason: str) -> None:
        for job in jobs:
            self.metrics.request_refused(self.name, "failed", "other")
            job.fail(InternalError(reason))

    def _answer_expired(self, jobs: list[Job]) -> None:
        for job in jobs:
            self.metrics.request_refused(self.name, "failed", "other")
            waited_ms = (time.perf_counter() - job.request.arrived) * 1000.0
            job.fail(
                DeadlineExceeded(
                    f"deadline passed after {waited_ms:.0f} ms in pool {self.name}'s queue "
                    f"(the pool ran slower than predicted); retry, or allow a longer timeout"
                )
            )

    # --- supervision

    async def _restart(self, slot: Slot) -> None:
        """Wait out the backoff (and any down period of the device), then start the worker again."""
        now = time.perf_counter()
        wait_s = max(self.config.watchdog.backoff_s(slot.consecutive_failures), slot.unit.down_until - now)
        slot.restart_at = now + wait_s
        if await self._stopped_within(wait_s):
            return
        try:
            await slot.worker.start()
        except WorkerFailure as failure:
            self._worker_failed(slot, failure)
            return
        finally:
            slot.restart_at = None
        self.metrics.worker_restarted(self.name)
        log.info("pool %s: worker %s restarted (pid %s)", self.name, slot.worker.spec.label, slot.worker.pid)
        self._publish_state()

    async def _stopped_within(self, seconds: float) -> bool:
        if seconds <= 0:
            return self._stopping.is_set()
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            return False
        return True

    def _worker_failed(self, slot: Slot, failure: WorkerFailure) -> None:
        slot.consecutive_failures += 1
        self.metrics.worker_failed(self.name, failure.kind)
        log.warning("pool %s: %s", self.name, failure)
        was_up = self.up
        if slot.unit.record_failure(time.perf_counter(), str(failure), self.config.health):
            log.error("pool %s: device %s %s", self.name, slot.unit.label, slot.unit.reason)
            for other in self.slots:
                if other.unit is slot.unit and other.worker.alive:
                    other.worker.kill(f"device {slot.unit.label} marked down")
        if was_up and not self.up:
            for job in self.evacuate():
                self.reroute(job, self.name, None)
        self._publish_state()

    # --- metrics

    def _publish_queue(self) -> None:
        self.metrics.queue_changed(self.name, len(self.batcher), self.batcher.queued_samples)

    def _publish_state(self) -> None:
        self.metrics.pool_state(self.name, self.up, self.ready_replicas)
