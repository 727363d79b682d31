"""`hwfit serve PLAN --ray`: hwfit's own front ends, batcher and router, with each pool's replicas as Ray
actors on the nodes the plan names. `RayWorker` is a replica handle with `serve`'s `Worker` interface,
plugged in through `PoolConfig.worker_factory`: the pool supervises it exactly as it does a local worker
process (watchdog, restarts with backoff, device marked down, requests rerouted), and an actor's or its
node's death reads as a worker's death."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from hwfit.cluster.connect import connect, label_resource, thread_env
from hwfit.core import Device
from hwfit.plan import Plan
from hwfit.serve import (
    BatchResult,
    ReplicaHandle,
    WatchdogPolicy,
    WorkerFailure,
    WorkerInfo,
    WorkerSpec,
    is_out_of_memory,
    load_replica,
    run_replica_batch,
)


class ReplicaActor:
    """The replica inside its Ray actor (a process of its own on its node): loads and warms up its
    variant, then runs the batches it is sent. `watch` never returns: the server awaits it to learn
    of the actor's death while it is idle."""

    def __init__(self, spec: WorkerSpec):
        if Device.parse(spec.device).is_gpu:  # Ray lent one GPU and made it the only visible one
            spec = replace(spec, device="cuda:0", variant=replace(spec.variant, device="cuda:0"))
        self.runner, self.info = load_replica(spec)
        import ray

        context = ray.get_runtime_context()
        self.info.notes.append(f"ray node {context.get_node_id()}")
        self.node_id = context.get_node_id()

    def ready(self) -> tuple[WorkerInfo, str]:
        return self.info, self.node_id

    def run(self, inputs: dict[str, np.ndarray]) -> tuple[str, Any, float, int]:
        try:
            outputs, compute_s, splits = run_replica_batch(self.runner, inputs)
        except Exception as error:  # goes back as the worker's "raised"/"oom", as from a local worker
            kind = "oom" if is_out_of_memory(error) else "raised"
            return kind, f"{type(error).__name__}: {error}", 0.0, 0
        return "done", outputs, compute_s, splits

    def watch(self) -> None:
        threading.Event().wait()


class RayWorker(ReplicaHandle):
    """One replica as a Ray actor, seen from the server: the same methods and states as `Worker`."""

    def __init__(
        self,
        spec: WorkerSpec,
        policy: WatchdogPolicy,
        input_bytes: int,
        output_bytes: int,
        node_group: str | None = None,
        address: str | None = "auto",
    ):
        super().__init__(spec, policy)
        self.node_group = node_group
        self.address = address
        self.node_id: str | None = None
        self._actor: Any = None
        self._watch_task: asyncio.Task | None = None

    @property
    def pid(self) -> int | None:
        return None if self.info is None else self.info.pid

    def actor_options(self) -> dict:
        """Where and with what the actor runs: the pool's node group, its threads' CPUs, a whole GPU."""
        threads = self.spec.variant.threads or 1
        options: dict[str, Any] = {
            "num_cpus": threads,
            "num_gpus": 1 if Device.parse(self.spec.device).is_gpu else 0,
            "max_restarts": 0,  # the pool restarts it, with its backoff, as it does a worker process
            "max_concurrency": 2,  # `run` beside the never-ending `watch`
            "runtime_env": {"env_vars": thread_env(threads)},  # Ray would set OMP_NUM_THREADS to num_cpus
        }
        if self.node_group is not None:
            options["resources"] = label_resource(self.node_group)
            options["scheduling_strategy"] = "SPREAD"  # the pool's units over the group's nodes
        return options

    async def start(self) -> WorkerInfo:
        from hwfit.core import HwfitError

        if self.alive:
            raise HwfitError(f"worker {self.spec.label} is already running (pid {self.pid})")
        ray = connect(self.address)
        self.died.clear()
        self.state = "starting"
        try:
            self._actor = ray.remote(**self.actor_options())(ReplicaActor).remote(self.spec)
            self.info, self.node_id = await asyncio.wait_for(
                _awaitable(self._actor.ready.remote()), self.policy.start_timeout_s
            )
        except asyncio.TimeoutError:
            raise self._cut(
                "hung", f"worker {self.spec.label} did not load within {self.policy.start_timeout_s:.0f} s; killed"
            ) from None
        except Exception as error:
            raise self._cut("load", f"worker {self.spec.label} failed to load as a Ray actor: {_why(error)}") from None
        self.state = "ready"
        self._watch_task = asyncio.ensure_future(self._watch(self._actor))
        return self.info

    async def run(self, inputs: Mapping[str, np.ndarray], predicted_s: float) -> BatchResult:
        if self.state != "ready":
            raise WorkerFailure("died", f"worker {self.spec.label} is {self.state}, not ready for a batch")
        self.state = "busy"
        timeout_s = self.policy.batch_timeout_s(predicted_s)
        actor = self._actor
        try:
            kind, payload, compute_s, splits = await asyncio.wait_for(
                _awaitable(actor.run.remote(dict(inputs))), timeout_s
            )
        except asyncio.TimeoutError:
            raise self._cut(
                "hung",
                f"worker {self.spec.label} gave no answer within {timeout_s:.2f} s "
                f"({self.policy.timeout_multiple:g}x its predicted {predicted_s * 1000:.1f} ms "
                f"+ {self.policy.timeout_margin_s:g} s); killed",
            ) from None
        except Exception as error:  # the actor or its node died
            raise self._cut("died", f"worker {self.spec.label} (Ray actor) died: {_why(error)}") from None
        if kind != "done":
            raise self._cut(kind, f"worker {self.spec.label} raised: {payload}")
        self.state = "ready"
        return BatchResult(payload, compute_s, splits)

    def kill(self, reason: str) -> None:
        self._kill_actor()
        self._mark_dead(WorkerFailure("died", reason))

    async def stop(self) -> None:
        self._kill_actor()
        if self._watch_task is not None:
            self._watch_task.cancel()
            self._watch_task = None
        self.state = "stopped"

    # --- internals

    async def _watch(self, actor) -> None:
        try:
            await _awaitable(actor.watch.remote())
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if actor is self._actor and self.alive:
                self._mark_dead(WorkerFailure("died", f"worker {self.spec.label} (Ray actor) died: {_why(error)}"))

    def _cut(self, kind: str, reason: str) -> WorkerFailure:
        self._kill_actor()
        failure = WorkerFailure(kind, reason)
        self._mark_dead(failure)
        return failure

    def _kill_actor(self) -> None:
        if self._actor is None:
            return
        import ray

        try:
            ray.kill(self._actor, no_restart=True)
        except Exception:  # already gone with its node
            pass
        self._actor = None

    def _mark_dead(self, failure: WorkerFailure) -> None:
        if self.state != "stopped":
            self.state = "dead"
        self.last_failure = failure
        self.died.set()


def _awaitable(ref):
    """A Ray ObjectRef as an asyncio future on the running loop."""
    return asyncio.wrap_future(ref.future())


def _why(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200] if text else ''}"


def ray_worker_factory(plan: Plan, address: str | None = "auto"):
    """A `PoolConfig.worker_factory` placing each pool's replicas on the pool's node group."""
    groups = {pool.name: pool.node_group for pool in plan.pools}

    def make(spec: WorkerSpec, policy: WatchdogPolicy, input_bytes: int, output_bytes: int) -> RayWorker:
        return RayWorker(spec, policy, input_bytes, output_bytes, groups.get(spec.pool), address)

    return make
