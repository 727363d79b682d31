"""The cluster's inventory, node by node: each node's devices discovered on that node (a Ray task
pinned to it running `hardware.discover`), its cores, its environment and, when asked, its measured
ceilings, kept in the node's hwfit cache (keyed by its hardware; see profile/ceilings.py) so they
are measured there once a week."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from hwfit.cluster.connect import ClusterError, connect, node_labels

DISCOVER_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class NodeInventory:
    """One node: where it is, its labels, what Ray lends of it, and what hwfit found on it."""

    node_id: str
    address: str
    labels: tuple[str, ...]
    ray_resources: dict[str, float]  # what Ray schedules by (CPU, GPU: logical counts; node:<label>)
    cores: tuple[int, ...]  # the CPU cores this node's processes may run on (sched_getaffinity there)
    devices: tuple[str, ...]  # cpu, cuda:0, ... as `hwfit devices` names them there
    cpu_model: str | None
    gpu_names: tuple[str, ...]
    environment: dict  # store.Environment.to_dict() captured on the node
    peaks: dict = field(default_factory=dict)  # device -> dtype -> {value, unit, how, source} (spec/computed there)
    ceilings: dict = field(default_factory=dict)  # device -> {matmul_flops: {dtype: v}, mem_bandwidth}

    @property
    def label(self) -> str:
        """The node's first label, or its Ray node id (short) when it has none."""
        return self.labels[0] if self.labels else self.node_id[:8]

    def device_kinds(self) -> set[str]:
        return {device.split(":")[0] for device in self.devices}

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        for name in ("labels", "cores", "devices", "gpu_names"):
            data[name] = list(data[name])
        data["label"] = self.label
        return data


def discover_node(measure: bool, quick: bool) -> dict:
    """Runs on the node (a Ray task pinned to it): what `hwfit devices` finds there."""
    from hwfit.hardware import discover
    from hwfit.profile import cached_ceilings, capture_environment

    found = discover()
    devices = ["cpu"] + [f"cuda:{gpu.index}" for gpu in found.gpus]
    environment = capture_environment()
    return {
        "cores": sorted(os.sched_getaffinity(0)),
        "devices": devices,
        "cpu_model": found.cpu.model_name,
        "gpu_names": [gpu.name for gpu in found.gpus],
        "environment": environment.to_dict(),
        "peaks": found.to_dict()["peaks"],
        "ceilings": cached_ceilings(devices, DISCOVER_TIMEOUT_S, quick, environment=environment) if measure else {},
    }


def cluster_inventory(address: str | None = "auto", ceilings: bool = False, quick: bool = True) -> list[NodeInventory]:
    """Every alive node of the cluster, discovered on itself; with `ceilings`, measured there (once, cached)."""
    ray = connect(address)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node for node in ray.nodes() if node.get("Alive")]
    if not nodes:
        raise ClusterError("the Ray cluster has no alive node")
    refs = []
    for node in nodes:
        pinned = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        task = ray.remote(num_cpus=0, max_retries=0, scheduling_strategy=pinned)(discover_node)
        refs.append(task.remote(ceilings, quick))
    found = []
    for node, ref in zip(nodes, refs):
        try:
            data = ray.get(ref, timeout=DISCOVER_TIMEOUT_S)
        except Exception as error:  # a node that cannot answer is named, not silently dropped
            raise ClusterError(
                f"node {node['NodeID'][:8]} ({node.get('NodeManagerAddress')}) could not be inventoried: "
                f"{type(error).__name__}: {error}"
            ) from None
        found.append(_node(node, data))
    return sorted(found, key=lambda n: (n.labels == (), n.label, n.node_id))


def _node(node: dict, data: dict) -> NodeInventory:
    resources = {name: float(value) for name, value in node.get("Resources", {}).items()}
    return NodeInventory(
        node_id=node["NodeID"],
        address=node.get("NodeManagerAddress", ""),
        labels=tuple(node_labels(resources)),
        ray_resources=resources,
        cores=tuple(data["cores"]),
        devices=tuple(data["devices"]),
        cpu_model=data["cpu_model"],
        gpu_names=tuple(data["gpu_names"]),
        environment=data["environment"],
        peaks=data["peaks"],
        ceilings=data["ceilings"],
    )


def nodes_with(inventory: list[NodeInventory], device: str) -> list[NodeInventory]:
    """The nodes that have `device` (cpu, cuda:N) and lend it to Ray (a GPU node lends `GPU`)."""
    kind = device.split(":")[0]
    if kind == "cpu":
        return [n for n in inventory if n.ray_resources.get("CPU", 0) >= 1]
    return [n for n in inventory if device in n.devices and n.ray_resources.get("GPU", 0) >= 1]
