"""Plans across nodes: an SLO whose `devices:` name node groups of the cluster's inventory
(`node:cpu-pool: {count: 10}`: ten nodes labelled cpu-pool) is planned over the devices those nodes
have, and the plan says which node group each pool runs on (`PoolPlan.node_group`)."""

from __future__ import annotations

from hwfit.cluster.connect import LABEL_PREFIX, ClusterError
from hwfit.cluster.inventory import NodeInventory
from hwfit.plan import DeviceAllowance, Plan, Slo


def slo_node_groups(slo: Slo) -> list[str]:
    """The node groups an SLO names (its `devices:` keys that start with `node:`), as labels."""
    return [name[len(LABEL_PREFIX) :] for name in (slo.devices or {}) if name.startswith(LABEL_PREFIX)]


def resolve_node_groups(slo: Slo, inventory: list[NodeInventory]) -> tuple[Slo, dict[str, str]]:
    """The SLO over the devices its node groups have, and which group each of those devices is on.

    A CPU group of N nodes is N units of `cpu`; a GPU group is its nodes' GPUs (N x GPUs per node
    units of `cuda:0`, as Ray lends each replica one GPU). The price per hour is per node, shared
    among a GPU node's GPUs. Plain device names in the SLO stay as they are.
    """
    devices: dict[str, DeviceAllowance] = {}
    group_of: dict[str, str] = {}
    known = sorted({label for node in inventory for label in node.labels})
    known_text = ", ".join(known) or "none (start nodes with --resources '{\"node:LABEL\": 1}')"
    for name, allowance in (slo.devices or {}).items():
        if not name.startswith(LABEL_PREFIX):
            devices[name] = allowance
            continue
        label = name[len(LABEL_PREFIX) :]
        nodes = [node for node in inventory if label in node.labels]
        if not nodes:
            raise ClusterError(
                f"the SLO names node group {label!r}, which no alive node has; the cluster's node groups are "
                f"{known_text}"
            )
        if len(nodes) < allowance.count:
            raise ClusterError(
                f"the SLO allows {allowance.count} nodes of group {label!r}, but the cluster has {len(nodes)}"
            )
        device, units, price = _group_device(nodes[0], allowance)
        if device in group_of:
            raise ClusterError(
                f"node groups {group_of[device]!r} and {label!r} both offer {device}: one plan cannot tell their "
                "measurements apart yet; plan one group at a time"
            )
        group_of[device] = label
        devices[device] = DeviceAllowance(count=units * allowance.count, price_per_hour=price)
    return slo.model_copy(update={"devices": devices}), group_of


def _group_device(node: NodeInventory, allowance: DeviceAllowance) -> tuple[str, int, float | None]:
    gpus = [device for device in node.devices if device.startswith("cuda:")]
    if gpus:
        price = None if allowance.price_per_hour is None else allowance.price_per_hour / len(gpus)
        return "cuda:0", len(gpus), price
    return "cpu", 1, allowance.price_per_hour


def place_pools(plan: Plan, group_of: dict[str, str], inventory: list[NodeInventory]) -> Plan:
    """The plan with each pool's node group set (its device's group) and said in its assumptions."""
    pools = []
    notes = []
    for pool in plan.pools:
        group = group_of.get(pool.device)
        pools.append(pool.model_copy(update={"node_group": group}))
        if group is not None:
            nodes = [node.label for node in inventory if group in node.labels]
            notes.append(f"pool {pool.name} runs on node group {group} ({len(nodes)} nodes in the inventory)")
    return plan.model_copy(update={"pools": pools, "assumptions": [*plan.assumptions, *notes]})
