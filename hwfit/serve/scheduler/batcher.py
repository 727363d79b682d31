"""The dynamic batcher of one pool: a bounded priority queue of accepted requests, batch formation
(Triton's rule: dispatch when the batch is full or its oldest request has waited the max queue
delay), packing requests whole into one batch (padding dynamic axes to the longest), and slicing
the batch's outputs back per request.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from hwfit.models import BATCH, InputSpec
from hwfit.serve.api import InferRequest, level_of
from hwfit.simulate import waits_for_delay

PAD_VALUE = 0  # token id 0 is [PAD] for BERT-family vocabularies; mask 0 hides the padded positions


@dataclass(eq=False)
class Job:
    """One accepted request inside the scheduler, from admission to its answer."""

    request: InferRequest
    samples: int  # along the batch axis
    sizes: dict[str, int]  # the request's size of each dynamic dim other than the batch, e.g. {"S": 12}
    future: asyncio.Future
    seq: int  # admission order, for FIFO within a priority
    deadline: float | None = None  # perf_counter time; the request's own or the server's default
    hard_deadline: bool = False  # the client set it (its timeout): past it, an answer is useless
    unseen_s: float = 0.0  # taken off the deadline: the server's event-loop lag before `arrived`
    admitted_at: float = 0.0
    pool: str | None = None
    retried: bool = False
    formation_started: float | None = None
    dispatched_at: float | None = None
    predicted_completion: float | None = None  # the router's prediction when it was queued

    priority: int = field(init=False)  # importance: larger is more important (the Triton level turned around)

    def __post_init__(self) -> None:
        self.priority = self.request.options.importance

    @property
    def answered(self) -> bool:
        return self.future.done()

    def succeed(self, result: object) -> None:
        if not self.future.done():
            self.future.set_result(result)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


def job_sizes(spec: InputSpec, inputs: Mapping[str, np.ndarray]) -> tuple[int, dict[str, int]]:
    """Samples along the batch axis and the size of every other dynamic dim, from validated inputs."""
    samples = 1
    sizes: dict[str, int] = {}
    for tensor in spec.tensors:
        shape = inputs[tensor.name].shape
        for axis, dim in enumerate(tensor.shape):
            if dim == BATCH:
                samples = int(shape[axis])
            elif isinstance(dim, str):
                sizes[dim] = int(shape[axis])
    return samples, sizes


def batchable(spec: InputSpec) -> bool:
    """Requests can share a batch only if every input has the batch dim first."""
    return all(tensor.shape and tensor.shape[0] == BATCH for tensor in spec.tensors)


# --- packing and slicing -----------------------------------------------------------------------


@dataclass
class PackedBatch:
    inputs: dict[str, np.ndarray]
    size: int  # samples in the batch
    offsets: list[int]  # first row of each job
    padded_sizes: dict[str, int]  # dynamic dim -> the size every job was padded to
    padded_elements: dict[str, int]  # input name -> elements added by padding


def pack_batch(jobs: list[Job], spec: InputSpec) -> PackedBatch:
    """Concatenate the jobs' inputs along the batch axis, padding dynamic axes to the longest job."""
    if len(jobs) == 1:  # nothing to join: hand the request's own arrays on, no copy
        job = jobs[0]
        return PackedBatch(dict(job.request.inputs), job.samples, [0], dict(job.sizes), {})
    offsets = list(itertools.accumulate((job.samples for job in jobs[:-1]), initial=0))
    size = sum(job.samples for job in jobs)
    padded_sizes = {dim: max(job.sizes[dim] for job in jobs) for dim in jobs[0].sizes}
    inputs: dict[str, np.ndarray] = {}
    padded: dict[str, int] = {}
    for tensor in spec.tensors:
        arrays = [job.request.inputs[tensor.name] for job in jobs]
        inputs[tensor.name], padded[tensor.name] = _join_padded(arrays, tensor.shape, padded_sizes)
    return PackedBatch(inputs, size, offsets, padded_sizes, {name: count for name, count in padded.items() if count})


def _join_padded(arrays: list[np.ndarray], dims: tuple, padded_sizes: dict[str, int]) -> tuple[np.ndarray, int]:
    trailing = tuple(padded_sizes[d] if isinstance(d, str) else d for d in dims[1:])
    if all(array.shape[1:] == trailing for array in arrays):
        return np.concatenate(arrays, axis=0), 0
    rows = sum(array.shape[0] for array in arrays)
    joined = np.full((rows,) + trailing, PAD_VALUE, dtype=arrays[0].dtype)
    row = 0
    for array in arrays:
        region = (slice(row, row + array.shape[0]),) + tuple(slice(0, extent) for extent in array.shape[1:])
        joined[region] = array
        row += array.shape[0]
    return joined, int(joined.size - sum(array.size for array in arrays))


def slice_outputs(
    outputs: Mapping[str, np.ndarray],
    packed: PackedBatch,
    jobs: list[Job],
    output_dims: Mapping[str, Mapping[int, str]],
) -> list[dict[str, np.ndarray]]:
    """Each job's rows of every output; an output axis that follows a padded input dim is cut back
    to the job's own size (`output_dims`: output name -> {axis: input dim name})."""
    if len(jobs) == 1 and not packed.padded_elements:
        return [dict(outputs)]
    parts = []
    for job, offset in zip(jobs, packed.offsets):
        own = {}
        for name, array in outputs.items():
            region = [slice(offset, offset + job.samples)]
            for axis in range(1, array.ndim):
                dim = output_dims.get(name, {}).get(axis)
                padded_to = packed.padded_sizes.get(dim) if dim else None
                keep = job.sizes[dim] if padded_to is not None and array.shape[axis] == padded_to else None
                region.append(slice(0, keep))
            own[name] = array[tuple(region)]
        parts.append(own)
    return parts


# --- the queue and batch formation -------------------------------------------------------------


class QueueFull(Exception):
    """The queue has no room for a job and holds nothing of lower priority to shed."""


@dataclass
class Batch:
    jobs: list[Job]
    formation_started: float
    dispatched_at: float
    expired: list[Job] = field(default_factory=list)  # client deadline passed while queued: don't run

    @property
    def samples(self) -> int:
        return sum(job.samples for job in self.jobs)


class DynamicBatcher:
    """Bounded priority queue (higher priority first, FIFO within one) and batch formation."""

    def __init__(
        self,
        max_batch_size: int,
        max_queue_delay_s: float,
        limit_samples: int,
        one_request_per_batch: bool = False,
        arrival_rate: Callable[[float], float] | None = None,
        busy_replicas: Callable[[], int] | None = None,
    ):
        """`arrival_rate(now)` (samples/s the pool has been admitting) and `busy_replicas()`: with them, a
        request alone in an idle pool goes at once when no other is expected within the delay
        (`simulate.waits_for_delay`); without them, every batch that is not full waits the whole
        delay (Triton's rule)."""
        self.max_batch_size = max_batch_size
        self.arrival_rate = arrival_rate
        self.busy_replicas = busy_replicas
        self.max_queue_delay_s = max_queue_delay_s
        self.limit_samples = limit_samples
        self.one_request_per_batch = one_request_per_batch
        self.peak_queued_samples = 0
        self.draining = False  # dispatch what is queued without waiting for the delay
        self._stopped = False
        self._queue: list[tuple[tuple[int, int], Job]] = []  # sorted by (-priority, seq)
        self._samples_by_priority: dict[int, int] = {}  # queued samples at each priority: samples_ahead in O(levels)
        self._changed = asyncio.Event()
        self._forming = asyncio.Lock()

    @property
    def queued_samples(self) -> int:
        return sum(self._samples_by_priority.values())

    def __len__(self) -> int:
        return len(self._queue)

    def jobs(self) -> list[Job]:
        return [job for _, job in self._queue]

    def samples_ahead(self, priority: int) -> int:
        """Queued samples a new job of `priority` would wait behind."""
        return sum(samples for level, samples in self._samples_by_priority.items() if level >= priority)

    def admit(self, job: Job, now: float) -> list[Job]:
        """Queue `job`; returns lower-priority jobs shed to make room. Raises QueueFull if none can be."""
        shed = self._victims_for(job)
        for victim in shed:
            self.remove(victim)
        job.admitted_at = now
        self._insert(job)
        return shed

    def has_room(self, samples: int, priority: int) -> bool:
        """Whether a job of this size and priority would be admitted (perhaps by shedding lower ones)."""
        room_needed = self.queued_samples + samples - self.limit_samples
        for _, queued in reversed(self._queue):
            if room_needed <= 0 or queued.priority >= priority:
                break
            room_needed -= queued.samples
        return room_needed <= 0

    def has_lower_priority_than(self, priority: int) -> bool:
        return bool(self._queue) and self._queue[-1][1].priority < priority

    def shed_lower(self, priority: int, keep: Callable[[Job, int], bool]) -> list[Job]:
        """Remove and return queued jobs below `priority` for which `keep(job, samples_ahead)` is False."""
        shed = []
        ahead = 0
        for _, job in list(self._queue):
            if job.priority < priority and not keep(job, ahead):
                self.remove(job)
                shed.append(job)
                continue
            ahead += job.samples
        return shed

    def remove(self, job: Job) -> bool:
        for index, (_, queued) in enumerate(self._queue):
            if queued is job:
                del self._queue[index]
                self._count_out(job)
                return True
        return False

    def requeue(self, jobs: Iterable[Job]) -> None:
        """Put jobs taken for a batch back (their original order is kept by their seq)."""
        for job in jobs:
            self._insert(job)

    def take_all(self) -> list[Job]:
        jobs = self.jobs()
        self._queue.clear()
        self._samples_by_priority.clear()
        return jobs

    def drain(self) -> None:
        """No new work is coming: dispatch what is queued without waiting for the delay."""
        self.draining = True
        self._changed.set()

    def stop(self) -> None:
        """No more batches: `next_batch` returns None once the queue is empty."""
        self._stopped = True
        self.draining = True
        self._changed.set()

    async def next_batch(self) -> Batch | None:
        """Wait for the next batch to be due and take it; None once stopped and empty."""
        async with self._forming:
            formation_started = None
            while True:
                if not self._queue:
                    if self._stopped:
                        return None
                    formation_started = None
                    await self._wait_for_change(None)
                    continue
                now = time.perf_counter()
                formation_started = formation_started or now
                due = self._due_at(now)
                if now >= due:
                    return self._take(formation_started, now)
                await self._wait_for_change(due - now)

    def take_due(self, now: float) -> Batch | None:
        """The next batch if it is due now (full, its oldest request has waited the max queue delay,
        or draining), without waiting; None otherwise. For a replica that has just finished a batch:
        it is fed again before the finished batch's answers are encoded, not after."""
        if not self._queue or now < self._due_at(now):
            return None
        return self._take(now, now)

    def _due_at(self, now: float) -> float:
        """When the queued requests make a batch: now if full or draining, else when the oldest has
        waited the delay; or now, for a request alone in an idle pool that no other is expected to
        join within the delay (`simulate.waits_for_delay`)."""
        if self.queued_samples >= self.max_batch_size or self.draining:
            return -float("inf")
        due = min(job.admitted_at for _, job in self._queue) + self.max_queue_delay_s
        if self.arrival_rate is None or self.busy_replicas is None or due <= now:
            return due
        others = len(self._queue) > 1 or self.busy_replicas() > 0
        return due if waits_for_delay(self.arrival_rate(now), due - now, others) else now

    # --- internals

    def _victims_for(self, job: Job) -> list[Job]:
        room_needed = self.queued_samples + job.samples - self.limit_samples
        if room_needed <= 0:
            return []
        victims = []
        for _, queued in reversed(self._queue):  # lowest priority, newest first
            if queued.priority >= job.priority:
                break
            victims.append(queued)
            room_needed -= queued.samples
            if room_needed <= 0:
                return victims
        raise QueueFull(
            f"the queue holds {self.queued_samples} samples (limit {self.limit_samples}) "
            f"and none of lower priority than level {level_of(job.priority)} to shed"
        )

    def _insert(self, job: Job) -> None:
        key = (-job.priority, job.seq)
        bisect.insort(self._queue, (key, job), key=lambda item: item[0])
        self._samples_by_priority[job.priority] = self._samples_by_priority.get(job.priority, 0) + job.samples
        self.peak_queued_samples = max(self.peak_queued_samples, self.queued_samples)
        self._changed.set()

    def _count_out(self, job: Job) -> None:
        left = self._samples_by_priority[job.priority] - job.samples
        if left:
            self._samples_by_priority[job.priority] = left
        else:
            del self._samples_by_priority[job.priority]

    async def _wait_for_change(self, timeout_s: float | None) -> None:
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout_s)
        except asyncio.TimeoutError:
            pass

    def _take(self, formation_started: float, now: float) -> Batch:
        taken: list[Job] = []
        expired: list[Job] = []
        samples = 0
        head = 0  # the batch is a prefix of the queue (expired requests included): cut it off once
        for _, job in self._queue:
            if job.hard_deadline and job.deadline is not None and job.deadline <= now:
                expired.append(job)
                head += 1
                continue
            if samples + job.samples > self.max_batch_size or (taken and self.one_request_per_batch):
                break  # requests go whole and in order: no skipping ahead of the one that does not fit
            taken.append(job)
            samples += job.samples
            head += 1
        del self._queue[:head]
        for job in taken + expired:
            self._count_out(job)
        for job in taken:
            job.formation_started = max(formation_started, job.admitted_at)
            job.dispatched_at = now
        return Batch(taken, formation_started, now, expired)
