"""Sweeps across a Ray cluster: `profile.sweep` (and the planner's point sessions) with a `RayExecutor`,
which runs each point as a Ray task on a node that has its device, in a process of its own as on one
machine, with its cores pinned and its thread variables set; the driver alone writes the store.

Ray's CPU counts are logical: two tasks asking for one CPU each may share a core. So the driver keeps,
per node, which cores and devices are lent out: a point takes its device whole (two points never
share one while measured) and `replicas x threads` cores, which the task pins with sched_setaffinity.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from hwfit.cluster.connect import ClusterError, connect, thread_env
from hwfit.cluster.inventory import NodeInventory, cluster_inventory, nodes_with
from hwfit.core import Device, Variant
from hwfit.models import Model
from hwfit.profile import (
    PRECISION_DTYPE,
    JobOutcome,
    PointPlan,
    SweepObserver,
    SweepResult,
    SweepSpec,
    measure_point,
    run_isolated,
    sweep,
)
from hwfit.store import ResultsStore

RESULT_GRACE_S = 60.0  # beyond the point's own timeout: scheduling and the result's trip back


def measure_on_node(plan: PointPlan, timeout_s: float, cores: tuple[int, ...], threads: int) -> JobOutcome:
    """Runs as a Ray task on the chosen node: pin the cores, set the thread variables, then measure the
    point in a fresh process (which inherits both) exactly as a sweep on one machine does."""
    os.sched_setaffinity(0, cores)
    os.environ.update(thread_env(threads))
    device = Device.parse(plan.variant.device)
    if device.is_gpu:
        plan = _on_assigned_gpu(plan)
    outcome = run_isolated(measure_point, (plan,), timeout_s)
    if device.is_gpu and outcome.ok:
        # the point keeps the sweep's name for its device; the process saw Ray's GPU as cuda:0
        outcome.value.variant_key, outcome.value.variant = plan.details["asked_key"], plan.details["asked_variant"]
    return outcome


def _on_assigned_gpu(plan: PointPlan) -> PointPlan:
    """Ray sets CUDA_VISIBLE_DEVICES to the GPU it lent the task: inside, that GPU is cuda:0."""
    asked = plan.variant
    local = replace(asked, device="cuda:0")
    details = {**plan.details, "asked_key": asked.key, "asked_variant": asked.to_dict()}
    return replace(plan, variant=local, details=details)


@dataclass
class _NodeState:
    node: NodeInventory
    free_cores: set[int]
    busy_devices: set[str] = field(default_factory=set)
    dead: str | None = None  # why, once it died


class RayExecutor:
    """A `profile.PointExecutor` that measures each point on a cluster node (see module docstring)."""

    def __init__(
        self,
        ray,
        inventory: list[NodeInventory],
        concurrency: int | None = None,
        group_of: dict[str, str] | None = None,
    ):
        self.ray = ray
        self.inventory = inventory
        self.group_of = group_of or {}  # device -> the node group its points must run on (a plan's)
        self.nodes = {n.node_id: _NodeState(n, set(n.cores)) for n in inventory}
        # one family per device of every node keeps each busy (a node's CPU, each of its GPUs); a family
        # grows its batch in order, and a family waiting for a device holds only a thread of the driver
        self.concurrency = concurrency or max(1, sum(len(node.devices) for node in inventory))
        self._changed = threading.Condition()
        self._interrupted = threading.Event()
        self._in_flight: set = set()  # the ObjectRefs of the points being measured
        self.placements: list[tuple[str, str]] = []  # (variant key, node label), in the order started

    # --- profile.PointExecutor

    def interrupt(self) -> None:
        """Ctrl-C: cancel the points in flight (their processes killed) and start no more."""
        self._interrupted.set()
        with self._changed:
            refs = list(self._in_flight)
            self._changed.notify_all()
        for ref in refs:
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # already done, or its node gone
                pass

    def ceilings(self, devices: set[str], timeout_s: float, fresh: bool = False) -> dict:
        """Ceilings are per node (the inventory measured them there, or took them from the node's cache,
        whatever `fresh` says); the run keeps them by node label."""
        return {"nodes": {n.label: n.ceilings for n in self.inventory}}

    def measure(self, plan: PointPlan, timeout_s: float, on_progress: Callable[[dict], None]) -> JobOutcome:
        variant = plan.variant
        retried: list[str] = []
        while True:
            try:
                state, cores = self._acquire(variant, timeout_s)
            except ClusterError as error:
                return JobOutcome(False, reason=_with_retries(str(error), retried), where=_where(None, retried))
            try:
                outcome = self._run(state, cores, plan, timeout_s, on_progress)
            except _NodeLost as lost:
                retried.append(f"{state.node.label}: {lost}")
                continue  # to another node with the device (or a failure naming why there is none)
            finally:
                self._release(state, variant.device, cores)
            outcome.where = _where(state.node, retried)
            return outcome

    # --- placement

    def _acquire(self, variant: Variant, timeout_s: float) -> tuple[_NodeState, tuple[int, ...]]:
        """A node with the device free and enough free cores, waiting for one; the device and cores taken."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                if self._interrupted.is_set():
                    raise KeyboardInterrupt
                candidates = self._candidates(variant)
                for state in candidates:
                    cores = _cores_for(variant, state)
                    if cores is not None:
                        state.busy_devices.add(variant.device)
                        state.free_cores.difference_update(cores)
                        self.placements.append((variant.key, state.node.label))
                        return state, cores
                if time.monotonic() > deadline:
                    raise ClusterError(f"no node had {variant.device} and its cores free within {timeout_s:.0f} s")
                self._changed.wait(1.0)

    def _candidates(self, variant: Variant) -> list[_NodeState]:
        group = self.group_of.get(variant.device)
        having = {n.node_id for n in nodes_with(self.inventory, variant.device) if group is None or group in n.labels}
        alive = [s for s in self.nodes.values() if s.node.node_id in having and s.dead is None]
        if not alive:
            dead = [f"{s.node.label} ({s.dead})" for s in self.nodes.values() if s.dead and s.node.node_id in having]
            raise ClusterError(
                f"no alive node of the cluster has {variant.device}"
                + (f" in node group {group}" if group else "")
                + (f"; the nodes that had it died: {', '.join(dead)}" if dead else "")
            )
        needed = _cores_needed(variant, None)
        if needed is not None and all(len(s.node.cores) < needed for s in alive):
            largest = max(len(s.node.cores) for s in alive)
            raise ClusterError(
                f"{variant.key} occupies {needed} cores (replicas x threads); the largest node with "
                f"{variant.device} has {largest}"
            )
        return alive

    def _release(self, state: _NodeState, device: str, cores: tuple[int, ...]) -> None:
        with self._changed:
            state.busy_devices.discard(device)
            state.free_cores.update(cores)
            self._changed.notify_all()

    # --- one task

    def _run(self, state: _NodeState, cores, plan: PointPlan, timeout_s: float, on_progress) -> JobOutcome:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray = self.ray
        plan = _with_node_peaks(plan, state.node)
        gpu = Device.parse(plan.variant.device).is_gpu
        task = ray.remote(
            num_cpus=len(cores),
            num_gpus=1 if gpu else 0,
            max_retries=0,  # a lost node is retried here, on another node, and said so in the point
            scheduling_strategy=NodeAffinitySchedulingStrategy(state.node.node_id, soft=False),
        )(measure_on_node)
        on_progress({"phase": f"on node {state.node.label}"})
        ref = task.remote(plan, timeout_s, cores, _threads_of(plan.variant, len(cores)))
        with self._changed:
            self._in_flight.add(ref)
        try:
            outcome = ray.get(ref, timeout=timeout_s + RESULT_GRACE_S)
            if self._interrupted.is_set() and not outcome.ok:
                # the cancel killed the point's process before its worker (Ray kills a worker's children
                # too) and the worker still answered: that failure is the interruption's, not the point's
                raise KeyboardInterrupt
            return outcome
        except ray.exceptions.TaskCancelledError:
            raise KeyboardInterrupt from None  # only `interrupt` cancels: the point is not a result
        except ray.exceptions.GetTimeoutError:
            ray.cancel(ref, force=True)
            return JobOutcome(False, reason=f"node {state.node.label} gave no answer within {timeout_s:.0f} s")
        except ray.exceptions.RayTaskError as error:  # our own code raised on the node: a point failure
            return JobOutcome(False, reason=f"on node {state.node.label}: {error.cause!r}")
        except ray.exceptions.RayError as error:  # the node, its raylet or the task's worker went away
            if self._interrupted.is_set():
                raise KeyboardInterrupt from None
            reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
            if not self._node_alive(state.node.node_id):
                with self._changed:
                    state.dead = reason
            raise _NodeLost(reason) from None
        finally:
            with self._changed:
                self._in_flight.discard(ref)

    def _node_alive(self, node_id: str) -> bool:
        for _ in range(20):  # the cluster marks a dead node a moment after its tasks fail
            for node in self.ray.nodes():
                if node["NodeID"] == node_id and not node.get("Alive"):
                    return False
            time.sleep(0.25)
        return True


class _NodeLost(Exception):
    pass


def _cores_needed(variant: Variant, node_cores: int | None) -> int | None:
    """Cores a point occupies: replicas x threads on a CPU (all the node's without a thread count); one
    host core for a GPU point. None: every core of whichever node it lands on."""
    if Device.parse(variant.device).is_gpu:
        return 1
    replicas = int(variant.knob("replicas", "1") or 1)
    if variant.threads is None:
        return node_cores
    return replicas * variant.threads


def _cores_for(variant: Variant, state: _NodeState) -> tuple[int, ...] | None:
    if variant.device in state.busy_devices:
        return None
    if not Device.parse(variant.device).is_gpu and "cpu" in state.busy_devices:
        return None
    needed = _cores_needed(variant, len(state.node.cores))
    free = sorted(state.free_cores)
    if needed is None or len(free) < needed:
        return None
    return tuple(free[:needed])


def _threads_of(variant: Variant, cores: int) -> int:
    """The thread variables' value: the variant's threads, else every core it was given."""
    return variant.threads or cores


def _with_node_peaks(plan: PointPlan, node: NodeInventory) -> PointPlan:
    """The point judged against its node's ceilings and peaks, not the driver's."""
    device = plan.variant.device
    dtype = PRECISION_DTYPE[plan.variant.precision]
    ceilings = node.ceilings.get(device) or {}
    peak = ((node.peaks.get(device) or {}).get(dtype) or {}).get("value")
    return replace(
        plan,
        measured_peak_flops=(ceilings.get("matmul_flops") or {}).get(dtype) or plan.measured_peak_flops,
        bandwidth_bytes_per_s=ceilings.get("mem_bandwidth") or plan.bandwidth_bytes_per_s,
        spec_peak_flops=peak if peak is not None else plan.spec_peak_flops,
    )


def _where(node: NodeInventory | None, retried: list[str]) -> dict:
    """What the point keeps of where it ran: the node and its environment, and nodes lost on the way."""
    where: dict = {}
    if node is not None:
        where["node"] = {
            "id": node.node_id,
            "label": node.label,
            "labels": list(node.labels),
            "address": node.address,
            "environment": node.environment,
        }
    if retried:
        where["node_retries"] = list(retried)
    return where


def _with_retries(reason: str, retried: list[str]) -> str:
    if not retried:
        return reason
    return f"{reason} (lost on the way: {'; '.join(retried)})"


def cluster_sweep(
    model: Model,
    spec: SweepSpec,
    store: ResultsStore,
    observer: SweepObserver,
    address: str | None = "auto",
    fresh: bool = False,
    args: dict | None = None,
    inventory: list[NodeInventory] | None = None,
) -> tuple[SweepResult, RayExecutor]:
    """`profile.sweep` with every point on a cluster node; the run records the nodes it used."""
    ray = connect(address)
    observer.stage("taking the cluster's inventory (each node's devices and ceilings, measured there once)")
    inventory = inventory if inventory is not None else cluster_inventory(address, ceilings=True)
    executor = RayExecutor(ray, inventory)
    result = sweep(model, spec, store, observer, fresh=fresh, args={**(args or {}), "ray": True}, executor=executor)
    store.set_run_extra(result.run_id, "cluster_nodes", [n.to_dict() for n in inventory])
    return result, executor
