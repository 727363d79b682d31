"""A local two-node Ray cluster on loopback, started once per test session and stopped after: a head
labelled `head` (with Ray's dashboard on 127.0.0.1, which `serve deploy` talks to) and a worker
labelled `worker`, each lending 2 logical CPUs and an 80 MiB object store. Fast health checks, so a
killed node is found dead within seconds."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

import pytest

from hwfit.cluster.connect import loopback_only

loopback_only()  # before Ray is imported: keep every address on 127.0.0.1

NODE_CPUS = 2
OBJECT_STORE_BYTES = 80 * 2**20
HEALTH_CHECK = {"health_check_period_ms": 500, "health_check_failure_threshold": 3, "health_check_timeout_ms": 500}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalCluster:
    cluster: object
    dashboard_url: str
    worker: object  # the worker node's handle (ray._private.node.Node)

    @property
    def address(self) -> str:
        return self.cluster.address

    def worker_node_id(self) -> str:
        return self.worker.node_id

    def kill_worker(self) -> None:
        """The worker node dies at once: its raylet and every process on it killed."""
        self.cluster.remove_node(self.worker, allow_graceful=False)

    def add_worker(self) -> None:
        """A fresh worker node with the same label (after `kill_worker`)."""
        self.worker = self.cluster.add_node(**_worker_args())
        self.cluster.wait_for_nodes()


def _worker_args() -> dict:
    return {
        "num_cpus": NODE_CPUS,
        "resources": {"node:worker": 1},
        "node_ip_address": "127.0.0.1",
        "object_store_memory": OBJECT_STORE_BYTES,
    }


@pytest.fixture(scope="session")
def ray_cluster():
    import ray
    from ray._private import ray_constants
    from ray.cluster_utils import Cluster

    from hwfit.cluster import connect

    if ray_constants.ENABLE_RAY_CLUSTER:  # else every node would wait for ever at the machine's own address
        pytest.fail("Ray was imported before tests/cluster/conftest.py kept it on loopback (loopback_only)")

    dashboard_port = free_port()
    cluster = Cluster(initialize_head=False)
    try:
        cluster.add_node(
            num_cpus=NODE_CPUS,
            resources={"node:head": 1},
            node_ip_address="127.0.0.1",
            object_store_memory=OBJECT_STORE_BYTES,
            include_dashboard=True,
            dashboard_host="127.0.0.1",
            dashboard_port=dashboard_port,
            _system_config=HEALTH_CHECK,
        )
        worker = cluster.add_node(**_worker_args())
        cluster.wait_for_nodes()
        connect(cluster.address)
        yield LocalCluster(cluster, f"http://127.0.0.1:{dashboard_port}", worker)
    finally:
        ray.shutdown()
        cluster.shutdown()


def wait_until(condition, timeout_s: float = 30.0, every_s: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every_s)
    return False


@pytest.fixture(scope="session")
def small_model(tmp_path_factory):
    """y = relu(x @ W), x float32 [B, 4]: loads in milliseconds on every node (same machine, same path)."""
    from hwfit.models import load_model
    from tests.serve.emulation import write_small_onnx_model

    path = write_small_onnx_model(tmp_path_factory.mktemp("cluster-model") / "small.onnx")
    return load_model(str(path))
