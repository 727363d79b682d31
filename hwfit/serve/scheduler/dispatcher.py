"""`PlanDispatcher`: serves a plan. It builds one pool per plan pool, routes each request to the pool
predicted to answer it first (or refuses it at once with the reason), retries a request whose
worker failed on another pool once within its deadline, and drains gracefully on stop.

The front ends (HTTP, gRPC) see only the `Dispatcher` protocol of `hwfit.serve.api`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass, field, replace

from hwfit.core import Device
from hwfit.models import Model, load_model
from hwfit.plan import Plan
from hwfit.serve.api import (
    DeadlineExceeded,
    InferRequest,
    InferResponse,
    InternalError,
    ModelInfo,
    ModelNotFound,
    ServeError,
    Timings,
    Unavailable,
)
from hwfit.serve.scheduler.batcher import Job, batchable, job_sizes
from hwfit.serve.scheduler.cache import ResultCache, inputs_key
from hwfit.serve.scheduler.loop_lag import LoopLag
from hwfit.serve.scheduler.metrics import ServeMetrics
from hwfit.serve.scheduler.modelinfo import ModelIO, describe_model, input_bytes, refine_outputs
from hwfit.serve.scheduler.pools import JobResult, Pool, PoolConfig
from hwfit.serve.scheduler.router import Router, RouteRequest
from hwfit.serve.scheduler.validate import validate_request
from hwfit.serve.scheduler.workers import WorkerFailure

log = logging.getLogger("hwfit.serve")

OUTPUT_ARENA_BYTES = 1 << 20  # first size of a worker's output arena; it grows to fit


@dataclass(frozen=True)
class DispatcherConfig:
    cache_bytes: int = 0  # result cache size; 0 = off
    # A request without timeout_ms gets this deadline: None = the plan's SLO p99; 0 = no deadline.
    default_timeout_ms: float | None = None
    version: str = "1"
    pool: PoolConfig = field(default_factory=PoolConfig)


@dataclass(frozen=True)
class PoolSummary:
    """One pool as `hwfit serve` prints it."""

    name: str
    role: str
    variant: str
    device: str
    replicas: int
    ready_replicas: int
    max_batch_size: int
    max_queue_delay_ms: float
    up: bool
    down_reason: str | None
    emulated: bool
    degraded: bool


class PlanDispatcher:
    """Implements `hwfit.serve.api.Dispatcher` for one plan. Lives on the asyncio loop `start` runs on."""

    def __init__(self, plan: Plan, model: Model | None = None, config: DispatcherConfig | None = None):
        self.plan = plan
        self.config = config or DispatcherConfig()
        self.model = model if model is not None else load_model(plan.model.source)
        self.io: ModelIO = describe_model(self.model, plan, self.config.version)
        self.metrics = ServeMetrics(plan.model.name, self.config.version, _telemetry_devices(plan))
        self.cache = ResultCache(self.config.cache_bytes) if self.config.cache_bytes > 0 else None
        self.default_timeout_ms = _default_timeout_ms(self.config, plan)
        self.pools = self._build_pools()
        self.router = Router(list(self.pools.values()), plan.fallback)
        self.loop_lag = LoopLag(on_sample=self.metrics.loop_lag_sampled)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accepting = False
        self._started = False
        self._stopped = False
        self._jobs: set[Job] = set()
        self._seq = itertools.count()

    def _build_pools(self) -> dict[str, Pool]:
        spec = self.model.inputs
        one_per_batch = not batchable(spec)
        pools = {}
        for pool_plan in self.plan.pools:
            io_bytes = (input_bytes(self.model, pool_plan.max_batch_size), OUTPUT_ARENA_BYTES)
            timeout_ms = _default_timeout_ms(self.config, self.plan)
            pool_config = replace(
                self.config.pool, default_deadline_s=None if timeout_ms is None else timeout_ms / 1000
            )
            pools[pool_plan.name] = Pool(
                pool_plan,
                self.model.source,
                spec,
                self.io.output_dims,
                self.metrics,
                self._reroute,
                pool_config,
                io_bytes,
                one_per_batch,
            )
        return pools

    # --- the Dispatcher protocol

    def models(self) -> list[ModelInfo]:
        return [self.io.info]

    def model_info(self, name: str, version: str | None = None) -> ModelInfo:
        info = self.io.info
        if name != info.name or (version not in (None, "") and version not in info.versions):
            wanted = name if version in (None, "") else f"{name} version {version}"
            raise ModelNotFound(
                f"no model {wanted!r} here; this server serves {info.name!r} version(s) {', '.join(info.versions)}"
            )
        return info

    def live(self) -> bool:
        return not self._stopped

    def ready(self, name: str | None = None, version: str | None = None) -> bool:
        """Accepting, and a pool that takes full-tier requests is up (a primary, or the fallback chain)."""
        if name is not None:
            try:
                self.model_info(name, version)
            except ModelNotFound:
                return False
        if not (self._started and self._accepting):
            return False
        return any(pool.up and not pool.degraded for pool in self.pools.values())

    async def start(self) -> None:
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.metrics.sample_devices)  # the first CPU reading waits 0.1 s
        await asyncio.gather(*(pool.start() for pool in self.pools.values()))
        self.loop_lag.start()  # after the workers' start-up, whose stalls no request waits behind
        self._refine_model_info()
        self._started = True
        self._accepting = True
        for summary in self.pool_summaries():
            state = "up" if summary.up else f"DOWN: {summary.down_reason}"
            log.info(
                "pool %s (%s, %s on %s%s): %d/%d replicas, %s",
                summary.name,
                summary.role,
                summary.variant,
                summary.device,
                ", EMULATED" if summary.emulated else "",
                summary.ready_replicas,
                summary.replicas,
                state,
            )

    async def stop(self, drain_s: float) -> None:
        """Stop accepting; answer what was accepted (up to drain_s); then stop every worker."""
        if self._stopped:
            return
        self._accepting = False
        for pool in self.pools.values():
            pool.batcher.drain()  # batches keep running (retries included) until the pools stop
        pending = [job.future for job in self._jobs]
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, drain_s))
        for job in list(self._jobs):
            self.metrics.request_refused(job.pool or "", "failed", "other")
            job.fail(
                Unavailable(
                    f"the server stopped before answering (drain limit {drain_s:g} s); retry", retry_after_s=1.0
                )
            )
        await asyncio.gather(*(pool.stop() for pool in self.pools.values()))
        self.loop_lag.stop()
        self._stopped = True

    async def infer(self, request: InferRequest) -> InferResponse:
        loop = asyncio.get_running_loop()
        if self._loop is not None and loop is not self._loop:  # a front end on another loop or thread
            return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._infer(request), self._loop))
        return await self._infer(request)

    @property
    def pending_requests(self) -> int:
        """Accepted and not yet answered: queued or running."""
        return len(self._jobs)

    def metrics_text(self) -> str:
        self.metrics.pending_requests = len(self._jobs)
        if self.cache is not None:
            self.metrics.cache_bytes.labels(self.metrics.model).set(self.cache.bytes)
        return self.metrics.text()

    # --- serving one request

    async def _infer(self, request: InferRequest) -> InferResponse:
        self.model_info(request.model_name, request.model_version)
        if not self._accepting:
            raise Unavailable(
                "the server is not accepting requests (starting or stopping); retry shortly", retry_after_s=1.0
            )
        job = self._job_for(request)
        cached = self._cached_response(request)
        if cached is not None:
            return cached
        self._place(job, exclude=frozenset())
        self._jobs.add(job)
        try:
            result: JobResult = await job.future
        finally:
            self._jobs.discard(job)
        return self._respond(request, job, result)

    def _job_for(self, request: InferRequest) -> Job:
        # The request's one validation; the workers run it unchecked. The limit is the plan's largest
        # max_batch_size.
        validate_request(request, self.model, self.io.info.max_batch_size)
        samples, sizes = job_sizes(self.model.inputs, request.inputs)
        # The client's timeout is hard (past it the answer is useless); the server's default, from the
        # SLO, only decides admission: a request admitted under it is answered even if it runs late.
        # Both are the client's clock: the event loop's recent lag (the wait before `arrived` was
        # stamped, unseen) is taken off.
        own_timeout = request.options.timeout_ms is not None
        timeout_ms = request.options.timeout_ms if own_timeout else self.default_timeout_ms
        unseen_s = self.loop_lag.reserve_s()
        deadline = None if not timeout_ms else request.arrived + timeout_ms / 1000.0 - unseen_s
        future = asyncio.get_running_loop().create_future()
        return Job(
            request, samples, sizes, future, next(self._seq), deadline, hard_deadline=own_timeout, unseen_s=unseen_s
        )

    def _place(self, job: Job, exclude: frozenset[str], count_refusal: bool = True, retry: bool = False) -> None:
        """Route and queue; raises Rejected / Unavailable (counted) when no pool takes it. A retried job
        with only the server's default deadline is placed regardless of it: it was accepted."""
        deadline = None if retry and not job.hard_deadline else job.deadline
        route_request = RouteRequest(
            job.samples, job.priority, job.request.options.tier, job.request.arrived, deadline, job.unseen_s
        )
        pool_name = ""
        try:
            route = self.router.choose(route_request, time.perf_counter(), exclude)
            pool_name = route.pool.name
            job.predicted_completion = route.predicted
            route.pool.submit(job)
        except ServeError as error:
            if count_refusal:
                reason = "rejected" if error.http_status == 429 else "other"
                self.metrics.request_refused(pool_name, "rejected", reason)
            raise

    def _reroute(self, job: Job, failed_pool: str, failure: WorkerFailure | None) -> None:
        """A pool gives a job back: its worker failed (retry once elsewhere) or the pool went down."""
        if job.answered:
            return
        if failure is not None:
            if job.retried:
                self._fail(job, failed_pool, _failure_error(failed_pool, failure, "it had already been retried once"))
                return
            job.retried = True
            self.metrics.request_retried(failed_pool)
        if job.hard_deadline and job.deadline is not None and time.perf_counter() >= job.deadline:
            self._fail(
                job,
                failed_pool,
                DeadlineExceeded(
                    f"pool {failed_pool} failed this request ({failure or 'pool down'}) and its deadline has passed"
                ),
            )
            return
        try:
            self._place(job, exclude=frozenset({failed_pool}), count_refusal=False, retry=True)
            return
        except ServeError:
            pass
        try:  # no other pool can take it in time: the same pool's other replicas, or its restart
            self._place(job, exclude=frozenset(), retry=True)
        except ServeError as error:
            job.fail(error)

    def _fail(self, job: Job, pool: str, error: ServeError) -> None:
        self.metrics.request_refused(pool, "failed", "backend")
        job.fail(error)

    def _respond(self, request: InferRequest, job: Job, result: JobResult) -> InferResponse:
        done = time.perf_counter()
        dispatched = job.dispatched_at or done
        formation_s = dispatched - (job.formation_started or dispatched)
        queue_s = max(0.0, dispatched - request.arrived - formation_s)
        self.metrics.request_succeeded(result.pool, done - request.arrived, queue_s, formation_s, result.compute_s)
        if self.cache is not None:
            self.cache.put(inputs_key(request.model_name, self.config.version, request.inputs), result.outputs)
        timings = Timings(
            queue_ms=queue_s * 1000.0, batch_ms=formation_s * 1000.0, compute_ms=result.compute_s * 1000.0
        )
        return InferResponse(
            self.io.info.name, self.config.version, _selected(result.outputs, request), request.id, result.pool, timings
        )

    def _cached_response(self, request: InferRequest) -> InferResponse | None:
        if self.cache is None:
            return None
        outputs = self.cache.get(inputs_key(request.model_name, self.config.version, request.inputs))
        if outputs is None:
            self.metrics.cache_misses.labels(self.metrics.model).inc()
            return None
        self.metrics.cache_hits.labels(self.metrics.model).inc()
        self.metrics.request_succeeded("cache", time.perf_counter() - request.arrived, 0.0, 0.0, 0.0)
        return InferResponse(
            self.io.info.name, self.config.version, _selected(outputs, request), request.id, "cache", Timings()
        )

    # --- reporting

    def pool_summaries(self) -> list[PoolSummary]:
        return [
            PoolSummary(
                pool.name,
                pool.role,
                pool.plan.variant,
                pool.plan.device,
                len(pool.slots),
                pool.ready_replicas,
                pool.max_batch_size,
                pool.plan.max_queue_delay_ms,
                pool.up,
                pool.down_reason,
                pool.plan.device.startswith("emulated") or pool.plan.backend == "emulated",
                pool.degraded,
            )
            for pool in self.pools.values()
        ]

    def _refine_model_info(self) -> None:
        """Fill output sizes the ONNX graph leaves symbolic from what a started replica produced."""
        for pool in sorted(self.pools.values(), key=lambda p: p.plan.backend == "emulated"):
            for slot in pool.slots:
                if slot.worker.info is not None and slot.worker.info.outputs:
                    self.io = refine_outputs(self.io, slot.worker.info.outputs)
                    return


def _failure_error(pool: str, failure: WorkerFailure, why_final: str) -> ServeError:
    message = f"pool {pool} could not run this request ({failure}); {why_final}"
    if failure.kind in ("raised", "oom"):
        return InternalError(message + ": the model failed on it; check the inputs")
    return Unavailable(message + "; retry later", retry_after_s=1.0)


def _selected(outputs: dict, request: InferRequest) -> dict:
    if not request.requested_outputs:
        return dict(outputs)
    return {name: outputs[name] for name in request.requested_outputs}


def _default_timeout_ms(config: DispatcherConfig, plan: Plan) -> float | None:
    if config.default_timeout_ms is None:
        return plan.slo.latency_p99_ms
    return config.default_timeout_ms or None


def _telemetry_devices(plan: Plan) -> tuple[str, ...]:
    """The devices hwfit.telemetry can read: the CPU always, GPUs the plan uses; never emulated ones."""
    devices = ["cpu"]
    for pool in plan.pools:
        device = Device.parse(pool.device)
        if device.is_gpu:
            devices += [unit.name for unit in device.offset(pool.devices)]
    return tuple(dict.fromkeys(devices))
