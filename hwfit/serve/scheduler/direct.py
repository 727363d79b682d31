"""DirectDispatcher: one backend Runner behind the front ends, no batching, one request at a time
on a worker thread. The "raw backend behind a server" baseline for benches, and the real
dispatcher the front-end tests run against."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
from prometheus_client import CollectorRegistry, Counter, generate_latest

from hwfit.backends import Runner, load_variant
from hwfit.core import InputSpecError, Variant
from hwfit.models import BATCH, InputSpec, Model, output_shapes
from hwfit.serve.api import (
    BadRequest,
    DeadlineExceeded,
    InferRequest,
    InferResponse,
    InternalError,
    ModelInfo,
    ModelNotFound,
    ServeError,
    TensorInfo,
    Timings,
    Unavailable,
    datatype_of,
)
from hwfit.serve.scheduler.validate import validate_request

log = logging.getLogger("hwfit.serve.scheduler.direct")


class DirectDispatcher:
    """A Dispatcher over one loaded variant. `max_batch_size` defaults to the variant's batch size.

    The runner is loaded and run once (batch 1, synthetic inputs) when this is built: the warm-up
    also tells the outputs' datatypes, so model metadata is what the runner really returns.
    """

    def __init__(
        self,
        model: Model,
        variant: Variant,
        max_batch_size: int | None = None,
        name: str | None = None,
        version: str = "1",
    ):
        self.model = model
        self.variant = variant
        self.runner: Runner = load_variant(model, variant)
        self.info = model_info_for(
            model, variant, self.runner, variant.batch_size if max_batch_size is None else max_batch_size, name, version
        )
        self.metrics = DirectMetrics(self.info.name)
        self._executor: ThreadPoolExecutor | None = None
        self._accepting = False
        self._stopped = False
        self._in_flight = 0

    # --- metadata and health ---

    def models(self) -> list[ModelInfo]:
        return [self.info]

    def model_info(self, name: str, version: str | None = None) -> ModelInfo:
        if name != self.info.name:
            raise ModelNotFound(f"unknown model '{name}'; this server serves ['{self.info.name}']")
        if version not in (None, "") and version not in self.info.versions:
            raise ModelNotFound(
                f"model '{name}' has no version '{version}'; its versions are {list(self.info.versions)}"
            )
        return self.info

    def live(self) -> bool:
        return True

    def ready(self, name: str | None = None, version: str | None = None) -> bool:
        if not self._accepting:
            return False
        if name is None:
            return True
        return name == self.info.name and version in (None, "", *self.info.versions)

    def metrics_text(self) -> str:
        return self.metrics.text()

    # --- lifecycle ---

    async def start(self) -> None:
        if self._stopped:
            raise Unavailable(
                f"model '{self.info.name}' was stopped and its runner released; build a new DirectDispatcher"
            )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"hwfit-direct-{self.info.name}")
        self._accepting = True

    async def stop(self, drain_s: float) -> None:
        self._accepting = False
        self._stopped = True
        deadline = time.perf_counter() + drain_s
        while self._in_flight and time.perf_counter() < deadline:
            await asyncio.sleep(0.005)
        if self._executor is None:
            return
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = None
        if self._in_flight:
            log.warning(
                "%d request(s) still running after %.1f s of draining; not closing the runner", self._in_flight, drain_s
            )
            return
        await asyncio.to_thread(self.runner.close)

    # --- inference ---

    async def infer(self, request: InferRequest) -> InferResponse:
        info = self.model_info(request.model_name, request.model_version)
        if not self._accepting or self._executor is None:
            raise Unavailable(f"model '{info.name}' is not accepting requests (not started, or stopping)")
        validate_request(request, self.model, info.max_batch_size or None)  # its one validation
        self._in_flight += 1
        submitted = time.perf_counter()
        try:
            loop = asyncio.get_running_loop()
            outputs, started, finished = await loop.run_in_executor(self._executor, self._run, request)
        except ServeError as error:
            self.metrics.failure(error)
            raise
        finally:
            self._in_flight -= 1
        batch = _batch_size(request.inputs)
        timings = Timings(queue_ms=(started - submitted) * 1e3, compute_ms=(finished - started) * 1e3)
        self.metrics.success(batch, request.arrived, timings)
        return InferResponse(
            model_name=info.name,
            model_version=request.model_version or info.versions[-1],
            outputs=_select(outputs, request.requested_outputs),
            id=request.id,
            pool=self.variant.key,
            timings=timings,
        )

    def _run(self, request: InferRequest) -> tuple[dict[str, np.ndarray], float, float]:
        """On the worker thread: check the deadline, run (unchecked: `infer` validated it), time it."""
        started = time.perf_counter()
        if request.deadline is not None and started > request.deadline:
            raise DeadlineExceeded(
                f"the request's deadline ({request.options.timeout_ms} ms) passed while it waited for the runner"
            )
        try:
            outputs = self.runner.run_unchecked(request.inputs)
        except InputSpecError as error:  # a backend's own limit, e.g. OpenVINO's compiled shapes
            raise BadRequest(str(error)) from error
        except Exception as error:
            log.exception("%s failed", self.variant.key)
            raise InternalError(f"{self.variant.key} failed: {type(error).__name__}: {error}") from error
        return outputs, started, time.perf_counter()


def _select(outputs: Mapping[str, np.ndarray], names: list[str] | None) -> dict[str, np.ndarray]:
    if names is None:
        return dict(outputs)
    return {name: outputs[name] for name in names}


def _batch_size(inputs: Mapping[str, np.ndarray]) -> int:
    first = next(iter(inputs.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 1


# --- model metadata -------------------------------------------------------------------------------


def model_info_for(
    model: Model, variant: Variant, runner: Runner, max_batch_size: int, name: str | None = None, version: str = "1"
) -> ModelInfo:
    """ModelInfo from the model's input spec and the runner's real outputs (a warm-up at batch 1).

    Dynamic dims (the batch, sequence length) are -1. The model batches along axis 0 when every
    input's first dim is the batch; otherwise max_batch_size is 0 (no batch dim), as in Triton.
    """
    batching = all(spec.shape and spec.shape[0] == BATCH for spec in model.inputs.tensors)
    inputs = tuple(
        TensorInfo(spec.name, datatype_of(spec.dtype), tuple(d if isinstance(d, int) else -1 for d in spec.shape))
        for spec in model.inputs.tensors
    )
    warm = runner.run(model.synthetic_inputs(1))
    dynamic = _dynamic_output_axes(model, batching)
    outputs = tuple(
        TensorInfo(
            output,
            datatype_of(np.asarray(warm[output]).dtype),
            tuple(
                -1 if axis in dynamic.get(output, ()) else int(size) for axis, size in enumerate(np.shape(warm[output]))
            ),
        )
        for output in model.output_names
    )
    return ModelInfo(
        name=name or model.name,
        versions=(version,),
        platform=f"hwfit/{variant.key}",
        inputs=inputs,
        outputs=outputs,
        max_batch_size=max_batch_size if batching else 0,
    )


def _dynamic_output_axes(model: Model, batching: bool) -> dict[str, set[int]]:
    """Output axes whose size follows an input's dynamic dim: compare ONNX shape inference at two
    batch sizes and two sizes of every other dynamic dim."""
    base = {name: set() for name in model.output_names}
    if batching:
        for axes in base.values():
            axes.add(0)
    if not model.inputs.default_sizes:
        return base
    grown = replace(
        model,
        inputs=InputSpec(model.inputs.tensors, {dim: size + 1 for dim, size in model.inputs.default_sizes.items()}),
        _costs={},
    )
    try:
        before, after = output_shapes(model, 1), output_shapes(grown, 1)
    except Exception as error:  # no shape inference for this graph: keep the batch axis only
        log.warning("cannot infer output shapes of %s (%s); reporting them as measured at batch 1", model.name, error)
        return base
    for output in model.output_names:
        for axis, (a, b) in enumerate(zip(before[output], after[output])):
            if a != b:
                base[output].add(axis)
    return base


# --- metrics ------------------------------------------------------------------------------------------


class DirectMetrics:
    """Request counters in Triton's names with an hwfit_ prefix, in a registry of its own."""

    def __init__(self, model_name: str):
        self.registry = CollectorRegistry()
        self.labels = {"model": model_name}
        labels = ["model"]
        self.request_success = Counter(
            "hwfit_inference_request_success", "requests answered", labels, registry=self.registry
        )
        self.request_failure = Counter(
            "hwfit_inference_request_failure", "requests failed, by reason", labels + ["reason"], registry=self.registry
        )
        self.inference_count = Counter("hwfit_inference_count", "samples inferred", labels, registry=self.registry)
        self.exec_count = Counter("hwfit_inference_exec_count", "runner executions", labels, registry=self.registry)
        self.request_duration = Counter(
            "hwfit_inference_request_duration_us",
            "cumulative request time, arrival to answer",
            labels,
            registry=self.registry,
        )
        self.queue_duration = Counter(
            "hwfit_inference_queue_duration_us",
            "cumulative time waiting for the runner",
            labels,
            registry=self.registry,
        )
        self.compute_duration = Counter(
            "hwfit_inference_compute_infer_duration_us", "cumulative runner time", labels, registry=self.registry
        )

    def success(self, batch_size: int, arrived: float, timings: Timings) -> None:
        self.request_success.labels(**self.labels).inc()
        self.inference_count.labels(**self.labels).inc(batch_size)
        self.exec_count.labels(**self.labels).inc()
        self.request_duration.labels(**self.labels).inc((time.perf_counter() - arrived) * 1e6)
        self.queue_duration.labels(**self.labels).inc(timings.queue_ms * 1e3)
        self.compute_duration.labels(**self.labels).inc(timings.compute_ms * 1e3)

    def failure(self, error: ServeError) -> None:
        reason = {DeadlineExceeded: "CANCELED", InternalError: "BACKEND"}.get(type(error), "OTHER")
        self.request_failure.labels(**self.labels, reason=reason).inc()

    def text(self) -> str:
        return generate_latest(self.registry).decode("utf-8")
