"""hwfit on a local two-node Ray cluster (tests/cluster/conftest.py): the inventory node by node, a
sweep spread over both nodes, a node killed mid-sweep (retried elsewhere, nothing lost, the rerun
measures nothing again), the Ray Serve export deployed with `serve deploy` answering a KServe v2
request, and `hwfit serve`'s pools as Ray actors on the worker node surviving a replica's death."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hwfit.cli import app
from hwfit.cluster import cluster_inventory, cluster_sweep, export_ray_serve, ray_worker_factory
from hwfit.plan import parse_plan
from hwfit.profile import build_spec
from hwfit.serve import DispatcherConfig, InferRequest, InProcess, PlanDispatcher, PoolConfig, WatchdogPolicy
from hwfit.store import open_store
from tests.cluster.conftest import free_port, wait_until

pytestmark = pytest.mark.cluster

FAST = {"budget_s": 0.5, "warmup_s": 0.2, "timeout_s": 120}
SPEC = {"backends": ["ort"], "precisions": ["fp32", "int8-dynamic"], "threads": [1], "batch_sizes": [1, 4], **FAST}


class Recorder:
    """A SweepObserver keeping what happened; `on_node(label, seconds, action)` runs `action` that many
    seconds after the first point placed on the node labelled `label`."""

    def __init__(self, trigger: tuple[str, float, object] | None = None, interrupt_after: int | None = None):
        self.finished = []
        self.trigger = trigger
        self.interrupt_after = interrupt_after
        self.fired = threading.Event()

    def planned(self, total_points):
        pass

    def stage(self, text):
        pass

    def point_started(self, variant):
        pass

    def point_progress(self, variant, message):
        if self.trigger is None or self.fired.is_set():
            return
        label, delay_s, action = self.trigger
        if message.get("phase") == f"on node {label}":
            self.fired.set()
            threading.Timer(delay_s, action).start()

    def family_finished(self, family, skipped_points):
        pass

    def point_finished(self, variant, measurement, reused):
        self.finished.append((variant.key, measurement.status, reused))
        if self.interrupt_after and len([f for f in self.finished if not f[2]]) >= self.interrupt_after:
            raise KeyboardInterrupt  # as Ctrl-C would, from the family's thread


def small_plan(model, pools: list[dict]) -> object:
    return parse_plan(
        {
            "model": {"name": "small", "source": model.source, "hash": model.content_hash},
            "slo": {"latency_p99_ms": 10000, "throughput_rps": 1, "objective": "latency"},
            "feasible": True,
            "pools": pools,
            "fallback": [pool["name"] for pool in pools],
            "search": {"grid_size": 1, "measured": 1, "reused": 0},
        }
    )


def ort_pool(name: str, role: str, node_group: str | None, replicas: int = 1) -> dict:
    return {
        "name": name,
        "role": role,
        "variant": "ort/cpu/fp32/b4/t1",
        "backend": "ort",
        "device": "cpu",
        "precision": "fp32",
        "threads": 1,
        "replicas_per_device": replicas,
        "max_batch_size": 4,
        "max_queue_delay_ms": 2.0,
        "service_ms": {1: 2.0, 4: 4.0},
        "expected": {"rate_rps": 1, "capacity_rps": 100},
        "node_group": node_group,
    }


def expected_y(model, x: np.ndarray) -> np.ndarray:
    import onnx
    from onnx import numpy_helper

    (weights,) = [numpy_helper.to_array(t) for t in onnx.load(model.source).graph.initializer]
    return np.maximum(x @ weights, 0)


# --- inventory ----------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_inventory_lists_each_node_with_what_was_found_on_it(ray_cluster):
    nodes = cluster_inventory(ray_cluster.address)
    assert sorted(node.label for node in nodes) == ["head", "worker"]
    for node in nodes:
        assert "cpu" in node.devices and node.cores and node.ray_resources["CPU"] == 2
        assert node.environment["python"] and node.environment["hostname_hash"]
        assert node.cpu_model == node.environment["cpu_model"]
    assert len({node.node_id for node in nodes}) == 2
    result = CliRunner().invoke(app, ["devices", "--ray", ray_cluster.address, "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["schema"] == "hwfit.cluster-devices/1"
    assert sorted(node["label"] for node in document["nodes"]) == ["head", "worker"]
    table = CliRunner().invoke(app, ["devices", "--ray", ray_cluster.address])
    assert table.exit_code == 0 and "worker" in table.output and "2 node(s)" in table.output


# --- sweeps -------------------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_a_sweep_spreads_over_both_nodes_and_keeps_each_points_node(ray_cluster, small_model, tmp_path):
    spec = build_spec(SPEC)
    with open_store(tmp_path / "r.db") as store:
        result, executor = cluster_sweep(small_model, spec, store, Recorder(), ray_cluster.address)
        run = store.get_run(result.run_id)
        points = store.measurements(result.run_id)
        extra = store.run_extra(result.run_id)
    assert run.status == "complete" and result.measured == 4
    assert {p.status for p in points} <= {"ok", "unstable"}
    nodes = {p.variant_key: p.details["node"] for p in points}
    assert {node["label"] for node in nodes.values()} == {"head", "worker"}  # both nodes measured
    # each point keeps the environment of the node it ran on, as captured there
    environments = {node["id"]: node["environment"] for node in nodes.values()}
    assert len(environments) == 2 and all(env["python"] and env["cpu_model"] for env in environments.values())
    assert {label for _, label in executor.placements} == {"head", "worker"}
    assert sorted(n["label"] for n in extra["cluster_nodes"]) == ["head", "worker"]
    assert set(extra["ceilings"]["nodes"]) == {"head", "worker"}  # measured on each node
    for point in points:  # a family's batches ran on one node at a time, pinned to the cores it was lent
        assert point.latency.p50_ms > 0 and point.samples_per_s > 0


@pytest.mark.timeout(300)
def test_a_node_killed_mid_sweep_loses_nothing_and_the_rerun_measures_nothing_again(ray_cluster, small_model, tmp_path):
    spec = build_spec({**SPEC, "budget_s": 3.0})  # long enough points that the kill lands inside one
    recorder = Recorder(trigger=("worker", 1.5, ray_cluster.kill_worker))
    try:
        with open_store(tmp_path / "r.db") as store:
            result, _ = cluster_sweep(small_model, spec, store, recorder, ray_cluster.address)
            points = store.measurements(result.run_id)
            run = store.get_run(result.run_id)
        assert recorder.fired.is_set()
        assert run.status == "complete" and len(points) == 4
        assert {p.status for p in points} <= {"ok", "unstable"}  # the lost point was measured again
        retried = [p for p in points if p.details.get("node_retries")]
        assert len(retried) == 1
        assert retried[0].details["node_retries"][0].startswith("worker:")
        assert retried[0].details["node"]["label"] == "head"
        # run again: every point is in the store, nothing is measured twice
        with open_store(tmp_path / "r.db") as store:
            again, _ = cluster_sweep(small_model, spec, store, Recorder(), ray_cluster.address)
        assert again.resumed and again.measured == 0 and again.reused == 4
    finally:
        if not any(node["Alive"] and node["NodeID"] == ray_cluster.worker_node_id() for node in _ray_nodes()):
            ray_cluster.add_worker()


class CtrlC(Recorder):
    """Presses Ctrl-C (SIGINT to the main thread, as a terminal would) a second after the third point
    is placed: one family's first point is in the store, the points in flight are mid-measurement."""

    def __init__(self):
        super().__init__()
        self.placed = 0
        self.lock = threading.Lock()

    def point_progress(self, variant, message):
        with self.lock:
            self.placed += str(message.get("phase", "")).startswith("on node")
            if self.placed == 3:
                threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()


@pytest.mark.timeout(240)
def test_an_interrupted_cluster_sweep_records_no_half_point_and_resumes(ray_cluster, small_model, tmp_path):
    spec = build_spec({**SPEC, "budget_s": 3.0})
    with open_store(tmp_path / "r.db") as store:
        with pytest.raises(KeyboardInterrupt):
            cluster_sweep(small_model, spec, store, CtrlC(), ray_cluster.address)
        (run,) = store.list_runs()
        kept = store.measurements(run.id)
        assert run.status == "interrupted"
        # the points that finished are kept; those in flight were cancelled on their nodes, not recorded
        assert 1 <= len(kept) < 4, [(p.variant_key, p.status, p.reason) for p in kept]
        assert {p.status for p in kept} <= {"ok", "unstable"}, [(p.variant_key, p.status, p.reason) for p in kept]
        again, _ = cluster_sweep(small_model, spec, store, Recorder(), ray_cluster.address)
        points = store.measurements(again.run_id)
    assert again.resumed and again.run_id == run.id
    assert again.reused == len(kept) and again.measured == 4 - len(kept)
    assert len(points) == 4 and {p.status for p in points} <= {"ok", "unstable"}


def _ray_nodes():
    import ray

    return ray.nodes()


# --- Ray Serve export ---------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_the_ray_serve_export_deploys_with_serve_deploy_and_answers_kserve_v2(ray_cluster, small_model, tmp_path):
    plan = small_plan(small_model, [ort_pool("main", "primary", "worker")])
    port = free_port()
    config = export_ray_serve(plan, tmp_path / "ray-serve", port=port)
    serve_cli = str(Path(sys.executable).with_name("serve"))
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.address}
    deploy = subprocess.run(
        [serve_cli, "deploy", str(config), "--address", ray_cluster.dashboard_url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert deploy.returncode == 0, deploy.stderr[-2000:]
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": x.ravel().tolist()}]})
    url = f"http://127.0.0.1:{port}/v2/models/small/infer"
    answers = []

    def answered() -> bool:
        try:
            request = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=5) as response:
                answers.append(json.loads(response.read()))
            return True
        except OSError:
            return False

    try:
        assert wait_until(answered, timeout_s=150, every_s=1.0), "the deployed application never answered"
        (output,) = answers[-1]["outputs"]
        assert output["name"] == "y" and output["shape"] == [2, 2]
        np.testing.assert_allclose(np.array(output["data"]).reshape(2, 2), expected_y(small_model, x), rtol=1e-5)
        assert answers[-1]["parameters"]["pool"] == "main"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/small", timeout=10) as response:
            metadata = json.loads(response.read())  # what `hwfit load` builds its requests from
        assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
        # concurrent requests are batched by @serve.batch, sized from the plan through user_config
        workers = [threading.Thread(target=answered) for _ in range(12)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        from ray import serve

        stats = serve.get_deployment_handle("pool-main", app_name="small").stats.remote().result(timeout_s=30)
        assert stats["batching"] == {"max_batch_size": 4, "batch_wait_timeout_s": 0.002}
        assert 1 < stats["largest_batch"] <= 4
    finally:
        subprocess.run(
            [serve_cli, "shutdown", "-y", "--address", ray_cluster.dashboard_url],
            capture_output=True,
            timeout=60,
            env=env,
        )


# --- hwfit serve --ray --------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_hwfit_serve_runs_a_replica_on_the_worker_node_and_survives_its_death(ray_cluster, small_model):
    plan = small_plan(small_model, [ort_pool("main", "primary", "worker"), ort_pool("spare", "fallback", "head")])
    watchdog = WatchdogPolicy(start_timeout_s=120.0, backoff_initial_s=0.1, backoff_max_s=0.5)
    pool_config = PoolConfig(watchdog=watchdog, worker_factory=ray_worker_factory(plan, ray_cluster.address))
    server = InProcess(PlanDispatcher(plan, small_model, DispatcherConfig(pool=pool_config)))
    main = lambda: server.dispatcher.pools["main"].slots[0].worker  # noqa: E731 - read on the loop below
    x = np.ones((1, 4), np.float32)
    try:
        assert wait_until(lambda: server.run_on_loop(lambda: main().ready), timeout_s=120)
        assert server.run_on_loop(lambda: main().node_id) == ray_cluster.worker_node_id()
        response = server.infer(InferRequest("small", {"x": x}))
        assert response.pool == "main"
        np.testing.assert_allclose(response.outputs["y"], expected_y(small_model, x), rtol=1e-5)
        before = server.run_on_loop(lambda: main().pid)
        os.kill(before, signal.SIGSTOP)  # hold the batch in the actor...
        future = server.infer_async(InferRequest("small", {"x": x}))
        time.sleep(0.3)
        os.kill(before, signal.SIGKILL)  # ...and kill it mid-batch
        assert future.result(timeout=60).pool == "spare"  # answered by the fallback pool on the head
        assert wait_until(lambda: server.run_on_loop(lambda: main().ready and main().pid != before), timeout_s=120)
        assert server.run_on_loop(lambda: main().node_id) == ray_cluster.worker_node_id()  # back on its group
        assert server.infer(InferRequest("small", {"x": x})).pool == "main"
    finally:
        server.stop()


@pytest.mark.timeout(180)
def test_the_hwfit_serve_command_with_ray_answers_over_http_from_the_worker_node(ray_cluster, small_model, tmp_path):
    plan_path = small_plan(small_model, [ort_pool("main", "primary", "worker")]).save(tmp_path / "plan.yaml")
    port = free_port()
    hwfit = str(Path(sys.executable).with_name("hwfit"))
    command = [hwfit, "serve", str(plan_path), "--ray", ray_cluster.address, "--http-port", str(port)]
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen([*command, "--grpc-port", "0"], stdout=log, stderr=subprocess.STDOUT)
    x = np.ones((1, 4), np.float32)
    body = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": x.ravel().tolist()}]})
    answers = []

    def answered() -> bool:
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v2/models/small/infer", body.encode(), {"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                answers.append(json.loads(response.read()))
            return True
        except OSError:
            return False

    try:
        assert wait_until(answered, timeout_s=120, every_s=0.5), (tmp_path / "serve.log").read_text()[-2000:]
        assert answers[-1]["parameters"]["pool"] == "main"
        np.testing.assert_allclose(answers[-1]["outputs"][0]["data"], expected_y(small_model, x).ravel(), rtol=1e-5)
        from ray.util.state import list_actors

        actors = list_actors(filters=[("class_name", "=", "ReplicaActor"), ("state", "=", "ALIVE")])
        assert [actor.node_id for actor in actors] == [ray_cluster.worker_node_id()]
        assert "pool main: replicas are Ray actors on node group worker" in (tmp_path / "serve.log").read_text()
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C: drain, stop the actors, exit
        assert server.wait(60) == 0
        log.close()


# --- plans across nodes -------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_hwfit_plan_ray_plans_a_node_group_and_names_it_in_the_plan(ray_cluster, small_model, tmp_path):
    slo = tmp_path / "slo.yaml"
    slo.write_text("latency_p99_ms: 1000\nthroughput_rps: 5\nobjective: latency\ndevices:\n  node:worker: {count: 1}\n")
    arguments = [
        "plan",
        small_model.source,
        "--slo",
        str(slo),
        "--ray",
        ray_cluster.address,
        "--budget",
        "2",
        "--point-seconds",
        "0.5",
        "--db",
        str(tmp_path / "r.db"),
        "--output",
        str(tmp_path / "plan.yaml"),
        "--export",
        "ray-serve",
        "--export-dir",
        str(tmp_path / "ray-serve"),
    ]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    from hwfit.plan import load_plan

    plan = load_plan(tmp_path / "plan.yaml")
    assert plan.feasible and plan.pools
    assert {pool.node_group for pool in plan.pools} == {"worker"}
    assert any("runs on node group worker" in line for line in plan.assumptions)
    exported = (tmp_path / "ray-serve" / "serve_config.yaml").read_text()
    assert "node:worker" in exported and "serve deploy" in exported
    with open_store(tmp_path / "r.db") as store:
        measured = [m for run_id in plan.search.run_ids for m in store.measurements(run_id)]
    measured = [m for m in measured if m.status != "skipped"]  # skipped here (no PyTorch model): never sent
    assert measured and all(m.details["node"]["label"] == "worker" for m in measured)  # on the group's nodes
