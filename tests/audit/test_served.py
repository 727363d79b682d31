"""The CPU path against a real served model: `hwfit profile` fills a store, `hwfit serve` runs a
one-pool plan, requests are sent on loopback while the audit watches, and the waterfall counts the
served samples, reads the store's evidence and adds up; a server that dies mid-window ends the audit
with what it has."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from hwfit.audit import AuditOptions, WatchSpec, run_audit
from hwfit.core import Variant
from hwfit.models import load_model
from hwfit.store import open_store
from tests.audit.plans import one_pool_plan, write_one_pool_plan
from tests.serve.emulation import write_small_onnx_model

FEATURES = 128


def _hwfit(*args: str) -> list[str]:
    return [sys.executable, "-c", "from hwfit.cli import main; main()", *args]


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    """A 128x128 model profiled (ort fp32 t1, batch 1 and 4) into a store of its own."""
    folder = tmp_path_factory.mktemp("audit")
    model_path = write_small_onnx_model(folder / "small.onnx", FEATURES, FEATURES)
    db = folder / "results.db"
    done = subprocess.run(
        _hwfit("profile", str(model_path), "-b", "ort", "-p", "fp32", "--batch", "1,4", "--threads", "1")
        + ["--budget", "1", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return folder, model_path, db


def _serve(folder, model_path):
    model = load_model(str(model_path))
    plan = one_pool_plan(
        model.name, str(model_path), model.content_hash, Variant("ort", "cpu", "fp32", 4, 1), 1, {1: 0.5, 4: 1.0}
    )
    plan_path = write_one_pool_plan(folder / "plan.yaml", plan)
    server = subprocess.Popen(
        _hwfit("serve", str(plan_path), "--http-port", "0", "--grpc-port", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    lines = []
    for line in server.stdout:
        lines.append(line)
        if "Ctrl-C stops accepting" in line:
            break
    url = re.search(r"HTTP (http://127\.0\.0\.1:\d+)", "".join(lines))
    assert url, "".join(lines)
    return server, url.group(1), model.name


def _send(url: str, model: str, seconds: float, sent: list[int]) -> None:
    tensor = {"name": "x", "datatype": "FP32", "shape": [1, FEATURES], "data": [1.0] * FEATURES}
    body = json.dumps({"inputs": [tensor]}).encode()
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        request = urllib.request.Request(f"{url}/v2/models/{model}/infer", body, {"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=10).read()
            sent[0] += 1
        except OSError:
            return


@pytest.mark.timeout(300)
def test_the_audit_of_a_served_model_counts_its_work_reads_the_store_and_adds_up(profiled):
    folder, model_path, db = profiled
    server, url, model = _serve(folder, model_path)
    try:
        sent = [0]
        sender = threading.Thread(target=_send, args=(url, model, 4.0, sent))
        sender.start()
        with open_store(db) as store:
            result = run_audit(
                WatchSpec(seconds=3.0, devices=("cpu",), serve_urls=(url,), pids=(server.pid,)), store, AuditOptions()
            )
        sender.join()
        assert result.observation.ended_because == "the 3 s window ended"
        (waterfall,) = result.waterfalls
        names = [step.name for step in waterfall.steps]
        assert names[:4] == ["purchased", "idle", "other processes", "busy but not computing"]
        assert names[-1] == "useful" and waterfall.useful.flops > 0
        assert sum(s.flops for s in waterfall.losses) + waterfall.useful.flops == pytest.approx(
            waterfall.purchased.flops
        )
        (pool,) = result.pools
        assert pool.window.pool.variant_key == "ort/cpu/fp32/b4/t1" and 0 < pool.window.samples <= sent[0] + 1
        # useful = samples counted by the server x FLOPs the profile counted (2 x 128 x 128 per sample)
        assert pool.flops_per_sample == pytest.approx(2 * FEATURES * FEATURES, rel=0.05)
        assert waterfall.useful.flops == pytest.approx(pool.window.samples * pool.flops_per_sample)
        assert pool.compute_core_s is not None and "batches (counted by the server)" in pool.compute_source
        assert waterfall.step("batch below the sweet spot") is not None  # the store has batch 1 and 4
        assert any(p.pid == server.pid for p in result.observation.processes)
        assert result.to_dict()["waterfalls"][0]["steps"][0]["name"] == "purchased"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.timeout(300)
def test_a_server_that_dies_mid_window_ends_the_audit_with_what_it_has(profiled):
    folder, model_path, db = profiled
    server, url, _ = _serve(folder, model_path)
    killer = threading.Timer(1.5, server.kill)
    killer.start()
    try:
        started = time.monotonic()
        result = run_audit(WatchSpec(seconds=60.0, devices=("cpu",), serve_urls=(url,), interval_s=0.25), None)
        assert time.monotonic() - started < 30
        assert "stopped answering" in result.observation.ended_because
        assert result.waterfalls[0].purchased.flops > 0 and result.observation.window_s < 30
    finally:
        killer.cancel()
        server.kill()
        server.wait(timeout=30)
