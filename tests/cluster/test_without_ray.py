"""The cluster layer's parts that need no cluster: the `--ray` flags without Ray installed (they say how
to get it), node groups in SLOs and plans, the Ray Serve config, and the driver's per-node placement of
points (device taken whole, cores counted, never more than a node has)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from hwfit.cli import app
from hwfit.cli._app import expand_ray_flag
from hwfit.cluster import (
    INSTALL_HINT,
    ClusterError,
    NodeInventory,
    RayExecutor,
    max_ongoing_requests,
    node_labels,
    place_pools,
    require_ray,
    resolve_node_groups,
    serve_config,
    slo_node_groups,
)
from hwfit.core import Variant
from hwfit.plan import parse_plan, parse_slo


def node(label: str, cores: int = 2, gpus: int = 0, node_id: str | None = None) -> NodeInventory:
    devices = ("cpu", *(f"cuda:{i}" for i in range(gpus)))
    return NodeInventory(
        node_id=node_id or f"{label}-id-0000",
        address="127.0.0.1",
        labels=(label,),
        ray_resources={"CPU": float(cores), "GPU": float(gpus), f"node:{label}": 1.0},
        cores=tuple(range(cores)),
        devices=devices,
        cpu_model="test cpu",
        gpu_names=("test gpu",) * gpus,
        environment={"python": "3"},
    )


def slo(devices: dict):
    return parse_slo({"latency_p99_ms": 100, "throughput_rps": 10, "objective": "cost", "devices": devices})


# --- without Ray --------------------------------------------------------------------------------


def test_without_ray_require_ray_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where it is not installed
    with pytest.raises(ClusterError, match=r"pip install 'hwfit\[cluster\]'"):
        require_ray()


@pytest.mark.parametrize(
    "arguments",
    [["devices", "--ray"], ["profile", "cnn", "--ray", "127.0.0.1:1"], ["serve", "PLAN", "--ray"]],
)
def test_without_ray_every_ray_flag_says_how_to_get_it(monkeypatch, tmp_path, arguments):
    monkeypatch.setitem(sys.modules, "ray", None)
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text("not read: Ray is checked first\n")
    arguments = [str(plan_file) if a == "PLAN" else a for a in arguments]
    result = CliRunner().invoke(app, expand_ray_flag(arguments))
    assert isinstance(result.exception, ClusterError), result.output
    assert INSTALL_HINT in str(result.exception)


def test_without_ray_plan_ray_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    slo_file = tmp_path / "slo.yaml"
    slo_file.write_text("latency_p99_ms: 100\nthroughput_rps: 10\nobjective: latency\n")
    result = CliRunner().invoke(app, expand_ray_flag(["plan", "cnn", "--slo", str(slo_file), "--ray"]))
    assert isinstance(result.exception, ClusterError) and INSTALL_HINT in str(result.exception)


def test_the_command_line_prints_the_hint_as_one_line_and_exits_2():
    # a fresh interpreter where `import ray` fails; `--ray` alone (no address) is accepted as a flag
    script = "import sys; sys.modules['ray'] = None; sys.argv = ['hwfit', 'devices', '--ray']; "
    script += "from hwfit.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "pip install 'hwfit[cluster]'" in done.stderr and "Traceback" not in done.stderr


def test_an_slo_naming_node_groups_needs_ray(tmp_path):
    slo_file = tmp_path / "slo.yaml"
    slo_file.write_text(
        "latency_p99_ms: 100\nthroughput_rps: 10\nobjective: latency\ndevices: {node:gpu: {count: 2}}\n"
    )
    result = CliRunner().invoke(app, ["plan", "cnn", "--slo", str(slo_file)])
    assert result.exit_code == 2 and "--ray" in result.output


@pytest.mark.parametrize(
    ("argv", "expanded"),
    [
        (["devices", "--ray"], ["devices", "--ray", "auto"]),
        (["devices", "--ray", "--json"], ["devices", "--ray", "auto", "--json"]),
        (["serve", "--ray", "plan.yaml"], ["serve", "--ray", "auto", "plan.yaml"]),
        (["profile", "m", "--ray", "10.0.0.5:6379"], ["profile", "m", "--ray", "10.0.0.5:6379"]),
        (["profile", "m", "--ray", "ray://head:10001"], ["profile", "m", "--ray", "ray://head:10001"]),
        (["devices", "--ray", "auto"], ["devices", "--ray", "auto"]),
    ],
)
def test_ray_alone_means_the_cluster_started_here(argv, expanded):
    assert expand_ray_flag(argv) == expanded


# --- node groups --------------------------------------------------------------------------------


def test_node_labels_are_the_node_resources_but_rays_own():
    resources = {"CPU": 2, "node:127.0.0.1": 1, "node:__internal_head__": 1, "node:gpu-a100": 1, "node:pool": 1}
    assert node_labels(resources) == ["gpu-a100", "pool"]


def test_node_groups_become_the_devices_their_nodes_have():
    inventory = [node("cpu-pool"), node("cpu-pool", node_id="cpu-pool-id-1"), node("gpu", gpus=4)]
    asked = slo({"node:cpu-pool": {"count": 2, "price_per_hour": 0.5}, "node:gpu": {"count": 1, "price_per_hour": 8}})
    assert slo_node_groups(asked) == ["cpu-pool", "gpu"]
    planned, group_of = resolve_node_groups(asked, inventory)
    assert group_of == {"cpu": "cpu-pool", "cuda:0": "gpu"}
    assert planned.devices["cpu"].count == 2 and planned.devices["cpu"].price_per_hour == 0.5
    # a GPU node's price is shared among its GPUs, each a unit Ray lends a replica
    assert planned.devices["cuda:0"].count == 4 and planned.devices["cuda:0"].price_per_hour == 2.0


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ({"node:nowhere": {"count": 1}}, "no alive node has; the cluster's node groups are a, b"),
        ({"node:a": {"count": 2}}, "allows 2 nodes of group 'a', but the cluster has 1"),
        ({"node:a": {"count": 1}, "node:b": {"count": 1}}, "both offer cpu"),
    ],
)
def test_node_groups_that_cannot_be_planned_are_named(devices, message):
    with pytest.raises(ClusterError, match=message.replace("(", r"\(")):
        resolve_node_groups(slo(devices), [node("a"), node("b")])


def test_the_plan_names_the_node_group_of_each_pool():
    plan = small_plan()
    placed = place_pools(plan, {"cpu": "cpu-pool"}, [node("cpu-pool"), node("cpu-pool", node_id="x")])
    assert placed.pools[0].node_group == "cpu-pool"
    assert "pool main runs on node group cpu-pool (2 nodes in the inventory)" in placed.assumptions
    assert parse_plan(placed.to_dict()).pools[0].node_group == "cpu-pool"  # the field survives the file


def small_plan(max_batch: int = 8, replicas: int = 2, node_group: str | None = None):
    return parse_plan(
        {
            "model": {"name": "small", "source": "small.onnx", "hash": "x"},
            "slo": {"latency_p99_ms": 100, "throughput_rps": 10, "objective": "latency"},
            "feasible": True,
            "pools": [
                {
                    "name": "main",
                    "role": "primary",
                    "variant": f"ort/cpu/fp32/b{max_batch}/t2",
                    "backend": "ort",
                    "device": "cpu",
                    "precision": "fp32",
                    "threads": 2,
                    "replicas_per_device": replicas,
                    "max_batch_size": max_batch,
                    "max_queue_delay_ms": 3.0,
                    "service_ms": {1: 1.0, max_batch: 4.0},
                    "expected": {"rate_rps": 1, "capacity_rps": 100},
                    "node_group": node_group,
                }
            ],
            "fallback": ["main"],
            "search": {"grid_size": 1, "measured": 1, "reused": 0},
        }
    )


# --- the Ray Serve config -----------------------------------------------------------------------


def test_the_ray_serve_config_sets_what_ray_would_otherwise_get_wrong(tmp_path):
    plan = small_plan(max_batch=8, replicas=2, node_group="cpu-pool")
    config = serve_config(plan, tmp_path / "plan.yaml")
    (application,) = config["applications"]
    assert application["import_path"] == "hwfit.cluster.ray_serve_app:build"
    ingress, pool = application["deployments"]
    assert pool["name"] == "pool-main" and pool["num_replicas"] == 2
    # at the deployment's top level (inside autoscaling_config Ray ignores it), sized from the queue
    # bound (8 full batches per replica, as hwfit serve queues), far above Ray's default of 5
    assert pool["max_ongoing_requests"] == max_ongoing_requests(plan.pools[0]) == 64
    assert "autoscaling_config" not in pool
    assert pool["user_config"] == {"max_batch_size": 8, "batch_wait_timeout_s": 0.003}
    options = pool["ray_actor_options"]
    assert options["num_cpus"] == 2 and options["num_gpus"] == 0
    assert options["runtime_env"]["env_vars"]["OMP_NUM_THREADS"] == "2"  # not Ray's value from num_cpus
    assert options["resources"] == {"node:cpu-pool": 0.001}
    assert ingress["max_ongoing_requests"] == 128 and config["http_options"]["host"] == "127.0.0.1"
    from ray.serve.schema import ServeDeploySchema  # the schema `serve deploy` checks the file against

    ServeDeploySchema.model_validate(config)


# --- placement on the driver --------------------------------------------------------------------


def test_each_point_takes_its_device_whole_and_the_cores_it_occupies():
    executor = RayExecutor(ray=None, inventory=[node("a", cores=2), node("b", cores=4)])
    one = Variant.parse("ort/cpu/fp32/b1/t1")
    first, cores_first = executor._acquire(one, timeout_s=1)
    second, cores_second = executor._acquire(Variant.parse("ort/cpu/int8-dynamic/b1/t2"), timeout_s=1)
    assert (first.node.label, cores_first) == ("a", (0,))
    assert (second.node.label, cores_second) == ("b", (0, 1))  # a's CPU is being measured: never shared
    with pytest.raises(ClusterError, match="no node had cpu and its cores free within 0 s"):
        executor._acquire(one, timeout_s=0)
    executor._release(first, "cpu", cores_first)
    assert executor._acquire(one, timeout_s=1)[0].node.label == "a"
    with pytest.raises(ClusterError, match=r"occupies 8 cores \(replicas x threads\); the largest node"):
        executor._acquire(Variant.parse("ort/cpu/fp32/b1/t4/replicas=2"), timeout_s=1)


def test_a_point_whose_device_no_node_has_is_refused_with_the_reason():
    executor = RayExecutor(ray=None, inventory=[node("a")])
    with pytest.raises(ClusterError, match="no alive node of the cluster has cuda:0"):
        executor._acquire(Variant.parse("torch/cuda:0/fp16/b1"), timeout_s=1)
