"""Workers: one replica of a pool is one spawned process that loads its variant and runs the batches
it is sent. The server side (`Worker`) starts it, sends batches, and cuts it off when it raises,
hangs past its watchdog timeout, or dies; restarting with backoff is the pool's job.

Tensors travel through shared-memory arenas (see `hwfit.serve.scheduler.shm` for why); the pipe carries
control messages. A CUDA out-of-memory error inside the worker splits the batch in two and runs
each half, recursively, before giving up (`run_splitting_on_oom`).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import pickle
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from hwfit.core import HwfitError, Variant
from hwfit.models import InputSpec
from hwfit.serve.scheduler.shm import (
    Arena,
    AttachedArena,
    bytes_needed,
    fits_raw_memory,
    read_tensors,
    write_tensors,
)

log = logging.getLogger("hwfit.serve")

# Messages: server -> worker ("run", batch_id, input arena, layout | None, inline inputs | None,
# output arena) and ("stop",); worker -> server ("ready", info), ("load_failed", reason),
# ("done", batch_id, layout | None, inline outputs | None, compute_s, oom_splits, output bytes),
# ("raised", batch_id, kind, reason).

OOM_MARKERS = (
    "out of memory",
    "cuda_error_out_of_memory",
    "cudaerrormemoryallocation",
    "failed to allocate memory",
    "outofmemory",
)


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to load its replica; pickled into the spawned process."""

    pool: str
    index: int
    device: str
    model_source: str
    model_inputs: InputSpec
    variant: Variant

    @property
    def label(self) -> str:
        return f"{self.pool}/{self.index} ({self.variant.key})"


@dataclass(frozen=True)
class WatchdogPolicy:
    """How long a worker may take before it is cut off, and how restarts back off."""

    timeout_multiple: float = 5.0  # a batch may take this many times its predicted service time...
    timeout_margin_s: float = 1.0  # ...plus this (scheduler noise, a first call's lazy init)
    start_timeout_s: float = 300.0  # loading a model (conversion, compilation) may be slow
    stop_timeout_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0

    def batch_timeout_s(self, predicted_s: float) -> float:
        return self.timeout_multiple * predicted_s + self.timeout_margin_s

    def backoff_s(self, consecutive_failures: int) -> float:
        """0 before the first failure, then initial, 2x initial, 4x ... up to the maximum."""
        if consecutive_failures <= 0:
            return 0.0
        return min(self.backoff_initial_s * 2 ** (consecutive_failures - 1), self.backoff_max_s)


class WorkerFailure(HwfitError):
    """A worker could not answer a batch: it failed to load, died, hung, or raised."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind  # load | died | hung | raised | oom


@dataclass
class BatchResult:
    outputs: dict[str, np.ndarray]
    compute_s: float  # measured inside the worker, around the runner call
    oom_splits: int = 0


@dataclass
class WorkerInfo:
    """What a worker reported when it became ready."""

    pid: int
    load_s: float
    warmup_ms: float
    notes: list[str] = field(default_factory=list)
    outputs: dict[str, tuple[tuple[int, ...], str]] = field(default_factory=dict)  # name -> (shape, dtype)


# --- out-of-memory splitting (runs inside the worker; pure, so it is testable anywhere) ---------


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA OOM from PyTorch (torch.cuda.OutOfMemoryError), ONNX Runtime or TensorRT, or host MemoryError."""
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    text = str(error).lower().replace(" ", "")
    return any(marker.replace(" ", "") in text for marker in OOM_MARKERS)


def batch_size_of(inputs: Mapping[str, np.ndarray]) -> int:
    return int(next(iter(inputs.values())).shape[0])


def split_inputs(inputs: Mapping[str, np.ndarray], at: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    return ({name: array[:at] for name, array in inputs.items()}, {name: array[at:] for name, array in inputs.items()})


def run_splitting_on_oom(
    run: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]],
    inputs: Mapping[str, np.ndarray],
    is_oom: Callable[[BaseException], bool] = is_out_of_memory,
    on_oom: Callable[[], None] | None = None,
) -> tuple[dict[str, np.ndarray], int]:
    """Run `inputs`; on out-of-memory run each half (recursively) and join the outputs in order.

    Returns (outputs, number of splits). A batch of one that still runs out of memory raises.
    """
    try:
        return run(inputs), 0
    except Exception as error:
        size = batch_size_of(inputs)
        if not is_oom(error) or size <= 1:
            raise
    if on_oom is not None:
        on_oom()
    first_inputs, second_inputs = split_inputs(inputs, size // 2)
    first, first_splits = run_splitting_on_oom(run, first_inputs, is_oom, on_oom)
    second, second_splits = run_splitting_on_oom(run, second_inputs, is_oom, on_oom)
    joined = {name: np.concatenate([first[name], second[name]], axis=0) for name in first}
    return joined, 1 + first_splits + second_splits


def release_cuda_cache() -> None:
    """After an OOM, hand PyTorch's cached blocks back so the halves have room."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- the worker process ---------------------------------------------------------------------


def worker_main(spec: WorkerSpec, conn) -> None:
    """Entry point of the spawned process: load, warm up, report ready, run batches until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server owns Ctrl-C: it drains, then stops us
    try:
        runner, info = load_replica(spec)
    except BaseException as error:  # every load failure goes back as a reason
        conn.send(("load_failed", f"{type(error).__name__}: {error}"))
        conn.close()
        return
    conn.send(("ready", info))
    try:
        _serve_batches(runner, conn)
    finally:
        runner.close()
        conn.close()


def load_replica(spec: WorkerSpec):
    """Load and warm up one replica's runner: (runner, WorkerInfo). Runs where the replica runs (its
    worker process here, or a Ray actor's process on a cluster node)."""
    from hwfit.backends import load_variant
    from hwfit.models import load_model

    started = time.perf_counter()
    model = replace(load_model(spec.model_source), inputs=spec.model_inputs)
    runner = load_variant(model, spec.variant)
    load_s = time.perf_counter() - started
    warm_inputs = model.synthetic_inputs(spec.variant.batch_size)
    runner.run_unchecked(warm_inputs)  # first call: lazy allocation, kernel selection
    warm_started = time.perf_counter()
    outputs = runner.run_unchecked(warm_inputs)
    warmup_ms = (time.perf_counter() - warm_started) * 1000.0
    shapes = {name: (tuple(np.shape(array)), np.asarray(array).dtype.name) for name, array in outputs.items()}
    return runner, WorkerInfo(os.getpid(), load_s, warmup_ms, list(runner.stats.notes), shapes)


def _serve_batches(runner, conn) -> None:
    input_arena: AttachedArena | None = None
    output_arena: AttachedArena | None = None
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the server went away
        if message[0] == "stop":
            return
        _, batch_id, input_name, layout, inline_inputs, output_name = message
        input_arena = _attached(input_arena, input_name)
        output_arena = _attached(output_arena, output_name)
        inputs = inline_inputs if layout is None else read_tensors(input_arena.buffer, layout, copy=False)
        conn.send(_run_one(runner, batch_id, inputs, output_arena))


def _attached(current: AttachedArena | None, name: str | None) -> AttachedArena | None:
    if name is None or (current is not None and current.name == name):
        return current
    if current is not None:
        current.close()
    return AttachedArena(name)


def run_replica_batch(runner, inputs: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], float, int]:
    """One batch on a loaded replica: (outputs, compute seconds, OOM splits); raises what the runner raised."""
    started = time.perf_counter()
    outputs, splits = run_splitting_on_oom(runner.run_unchecked, inputs, on_oom=release_cuda_cache)
    compute_s = time.perf_counter() - started
    return {name: np.ascontiguousarray(array) for name, array in outputs.items()}, compute_s, splits


def _run_one(runner, batch_id: int, inputs, output_arena: AttachedArena | None) -> tuple:
    try:
        outputs, compute_s, splits = run_replica_batch(runner, inputs)
    except Exception as error:
        kind = "oom" if is_out_of_memory(error) else "raised"
        return ("raised", batch_id, kind, f"{type(error).__name__}: {error}")
    out_layout = None if output_arena is None else write_tensors(output_arena.buffer, outputs)
    return (
        "done",
        batch_id,
        out_layout,
        None if out_layout is not None else outputs,
        compute_s,
        splits,
        bytes_needed(outputs),
    )


# --- the server's handle on one worker --------------------------------------------------------


class ReplicaHandle:
    """What a pool reads from one replica, whatever runs it (a worker process here, a Ray actor in
    `cluster`): its spec, its state, its last failure and the event set when it dies."""

    def __init__(self, spec: WorkerSpec, policy: WatchdogPolicy):
        self.spec = spec
        self.policy = policy
        self.info: WorkerInfo | None = None
        self.state = "stopped"  # stopped | starting | ready | busy | dead
        self.last_failure: WorkerFailure | None = None
        self.died = asyncio.Event()  # set when the replica is found dead (or cut off); cleared on start

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @property
    def alive(self) -> bool:
        return self.state in ("starting", "ready", "busy")


class Worker(ReplicaHandle):
    """One replica, seen from the server. Runs on the server's asyncio loop; not thread-safe."""

    def __init__(self, spec: WorkerSpec, policy: WatchdogPolicy, input_bytes: int, output_bytes: int):
        super().__init__(spec, policy)
        self._input_bytes_hint = input_bytes
        self._output_bytes_hint = output_bytes
        self._input_arena: Arena | None = None
        self._output_arena: Arena | None = None
        self._process: Any = None
        self._conn: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future | None = None
        self._batch_id = 0

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def start(self) -> WorkerInfo:
        """Spawn the process and wait until it has loaded and warmed up its runner."""
        if self.alive:
            raise HwfitError(f"worker {self.spec.label} is already running (pid {self.pid})")
        await self._reap()
        self._loop = asyncio.get_running_loop()
        self._ensure_arenas()
        context = multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe(duplex=True)
        process = context.Process(
            target=worker_main,
            args=(self.spec, child_end),
            daemon=True,
            name=f"hwfit-worker-{self.spec.pool}-{self.spec.index}",
        )
        try:
            process.start()
        except (
            OSError,
            ValueError,
            TypeError,
            AttributeError,
            pickle.PicklingError,
        ) as error:  # fork limits, unpicklable spec
            parent_end.close()
            child_end.close()
            self.last_failure = WorkerFailure("load", f"worker {self.spec.label} could not be started: {error}")
            raise self.last_failure from error
        child_end.close()  # so the worker's death reads as EOF here
        self._process, self._conn, self.state = process, parent_end, "starting"
        self.died.clear()
        self._waiter = self._loop.create_future()
        self._loop.add_reader(parent_end.fileno(), self._on_readable)
        try:
            self.info = await asyncio.wait_for(self._waiter, self.policy.start_timeout_s)
        except asyncio.TimeoutError:
            raise self._cut(
                "hung", f"worker {self.spec.label} did not load within {self.policy.start_timeout_s:.0f} s; killed"
            ) from None
        except WorkerFailure as failure:
            self.last_failure = failure
            raise
        self.state = "ready"
        return self.info

    async def run(self, inputs: Mapping[str, np.ndarray], predicted_s: float) -> BatchResult:
        """Run one batch; raises WorkerFailure (and leaves the worker dead) if it cannot answer in time."""
        if self.state != "ready":
            raise WorkerFailure("died", f"worker {self.spec.label} is {self.state}, not ready for a batch")
        assert self._loop is not None and self._input_arena is not None
        self._batch_id += 1
        message = self._run_message(dict(inputs))
        self._waiter = self._loop.create_future()
        self.state = "busy"
        try:
            self._conn.send(message)
        except OSError as error:
            raise self._cut("died", f"worker {self.spec.label} cannot be sent a batch ({error})") from None
        timeout_s = self.policy.batch_timeout_s(predicted_s)
        watchdog = self._loop.call_later(timeout_s, self._on_batch_timeout, self._waiter, timeout_s, predicted_s)
        try:
            reply = await self._waiter
        finally:
            watchdog.cancel()
        return self._take_result(reply)

    def _on_batch_timeout(self, waiter: asyncio.Future, timeout_s: float, predicted_s: float) -> None:
        if waiter is self._waiter and not waiter.done():  # _cut fails the waiter with the reason
            self._cut(
                "hung",
                f"worker {self.spec.label} gave no answer within {timeout_s:.2f} s "
                f"({self.policy.timeout_multiple:g}x its predicted {predicted_s * 1000:.1f} ms "
                f"+ {self.policy.timeout_margin_s:g} s); killed",
            )

    def _run_message(self, inputs: dict[str, np.ndarray]) -> tuple:
        assert self._input_arena is not None and self._output_arena is not None
        layout = write_tensors(self._input_arena.buffer, inputs)
        if layout is None and fits_raw_memory(inputs):
            self._input_arena.close()
            self._input_arena = Arena(2 * bytes_needed(inputs))
            layout = write_tensors(self._input_arena.buffer, inputs)
        inline = None if layout is not None else inputs
        return ("run", self._batch_id, self._input_arena.name, layout, inline, self._output_arena.name)

    def _take_result(self, reply: tuple) -> BatchResult:
        kind = reply[0]
        if kind == "raised":
            _, _, failure_kind, reason = reply
            raise self._cut(failure_kind, f"worker {self.spec.label} raised: {reason}")
        _, _, layout, inline, compute_s, splits, output_bytes = reply
        assert self._output_arena is not None
        outputs = inline if layout is None else read_tensors(self._output_arena.buffer, layout, copy=True)
        if output_bytes > self._output_arena.size:
            self._output_arena.close()  # the worker attaches the new one with the next batch
            self._output_arena = Arena(2 * output_bytes)
        self.state = "ready"
        return BatchResult(outputs, compute_s, splits)

    def kill(self, reason: str) -> None:
        """Cut the worker off now (SIGKILL); a batch it was running fails with `reason`."""
        if self._process is not None and self._process.is_alive():
            self._process.kill()
        self._mark_dead(WorkerFailure("died", reason))

    async def stop(self) -> None:
        """Ask the worker to exit; kill it if it does not within the stop timeout; free the arenas."""
        if self.alive and self._conn is not None:
            try:
                self._conn.send(("stop",))
            except OSError:
                pass
        process = self._process
        if process is not None:
            await asyncio.to_thread(process.join, self.policy.stop_timeout_s)
            if process.is_alive():
                process.kill()
        self._detach()
        self.state = "stopped"
        await self._reap()
        for arena in (self._input_arena, self._output_arena):
            if arena is not None:
                arena.close()
        self._input_arena = self._output_arena = None

    # --- internals

    def _ensure_arenas(self) -> None:
        if self._input_arena is None:
            self._input_arena = Arena(2 * self._input_bytes_hint)
        if self._output_arena is None:
            self._output_arena = Arena(2 * self._output_bytes_hint)

    def _cut(self, kind: str, reason: str) -> WorkerFailure:
        if self._process is not None and self._process.is_alive():
            self._process.kill()
        failure = WorkerFailure(kind, reason)
        self._mark_dead(failure)
        return failure

    def _on_readable(self) -> None:
        # One message per readable event: the reader is level-triggered, so a second message already
        # in the pipe calls back again (poll() would build a selector per call, on every batch).
        if self._conn is None:
            return
        try:
            self._on_message(self._conn.recv())
        except (EOFError, OSError):
            code = None
            if self._process is not None:
                self._process.join(0.2)  # EOF comes as it exits: the exit code is a moment away
                code = self._process.exitcode
            self._mark_dead(WorkerFailure("died", f"worker {self.spec.label} (pid {self.pid}) died{_exit_text(code)}"))

    def _on_message(self, message: tuple) -> None:
        kind = message[0]
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # an answer to a batch already given up on
        if kind == "ready":
            waiter.set_result(message[1])
        elif kind == "load_failed":
            waiter.set_exception(WorkerFailure("load", f"worker {self.spec.label} failed to load: {message[1]}"))
        elif message[1] == self._batch_id:
            waiter.set_result(message)

    def _mark_dead(self, failure: WorkerFailure) -> None:
        self._detach()
        if self.state != "stopped":
            self.state = "dead"
        self.last_failure = failure
        self.died.set()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(failure)

    def _detach(self) -> None:
        if self._conn is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._conn.fileno())
            self._conn.close()
            self._conn = None

    async def _reap(self) -> None:
        process = self._process
        if process is not None and process.exitcode is None:
            await asyncio.to_thread(process.join, self.policy.stop_timeout_s)


def _exit_text(code: int | None) -> str:
    if code is None:
        return ""
    if code < 0:
        try:
            return f" from signal {signal.Signals(-code).name}"
        except ValueError:
            return f" from signal {-code}"
    return f" with exit code {code}"
