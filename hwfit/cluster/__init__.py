"""hwfit on a Ray cluster (the optional `cluster` extra): the inventory node by node, sweeps whose
points run on the nodes that have their devices, plans across node groups, the Ray Serve export and
`hwfit serve --ray`. May import core and every layer but report and cli; importing it does not
import Ray (each entry point does, and says how to install it when it is missing)."""

from hwfit.cluster.connect import INSTALL_HINT, ClusterError, connect, node_labels, require_ray
from hwfit.cluster.inventory import NodeInventory, cluster_inventory, nodes_with
from hwfit.cluster.planning import place_pools, resolve_node_groups, slo_node_groups
from hwfit.cluster.ray_serve import export_ray_serve, max_ongoing_requests, serve_config
from hwfit.cluster.serving import RayWorker, ReplicaActor, ray_worker_factory
from hwfit.cluster.sweep import RayExecutor, cluster_sweep

__all__ = [
    "INSTALL_HINT",
    "ClusterError",
    "NodeInventory",
    "RayExecutor",
    "RayWorker",
    "ReplicaActor",
    "cluster_inventory",
    "cluster_sweep",
    "connect",
    "export_ray_serve",
    "max_ongoing_requests",
    "node_labels",
    "nodes_with",
    "place_pools",
    "ray_worker_factory",
    "require_ray",
    "resolve_node_groups",
    "serve_config",
    "slo_node_groups",
]
