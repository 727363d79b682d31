"""Sweeps with real backends: every point recorded with its figures, failures with reasons,
interrupted runs resumed without measuring any point twice, bad sweep files named."""

import re
import textwrap

import pytest

from hwfit.core import HwfitError
from hwfit.hardware import peak_flops
from hwfit.models import load_model
from hwfit.profile import build_spec, load_sweep_file, sweep
from hwfit.store import open_store

FAST = {"budget_s": 0.6, "warmup_s": 0.3, "timeout_s": 120}


class Recorder:
    """A SweepObserver that remembers what happened and can stop the sweep like Ctrl-C would."""

    def __init__(self, interrupt_after: int | None = None):
        self.finished = []
        self.interrupt_after = interrupt_after

    def planned(self, total_points):
        self.total = total_points

    def stage(self, text):
        pass

    def point_started(self, variant):
        pass

    def point_progress(self, variant, message):
        pass

    def family_finished(self, family, skipped_points):
        pass

    def point_finished(self, variant, measurement, reused):
        self.finished.append((variant.key, measurement.status, reused))
        if self.interrupt_after and len([f for f in self.finished if not f[2]]) >= self.interrupt_after:
            raise KeyboardInterrupt


def test_sweep_records_every_figure_and_the_environment(tmp_path, cnn):
    spec = build_spec({"backends": ["ort"], "precisions": ["fp32"], "batch_sizes": [1, 8], **FAST})
    with open_store(tmp_path / "r.db") as store:
        result = sweep(cnn, spec, store, Recorder())
        run = store.get_run(result.run_id)
        points = store.measurements(result.run_id)
    assert run.status == "complete" and run.model_hash == cnn.content_hash
    assert run.environment.python and run.environment.cpu_model
    assert [p.variant_key for p in points] == ["ort/cpu/fp32/b1", "ort/cpu/fp32/b8"]
    for point in points:
        assert point.status in ("ok", "unstable")
        assert point.latency.count >= 10 and point.latency.p50_ms > 0
        assert point.latency.ci95_low_ms <= point.latency.p50_ms <= point.latency.ci95_high_ms
        assert point.samples_per_s > 0 and point.peak_rss_delta_bytes is not None
        assert point.flops_per_sample == pytest.approx(cnn.cost(1).flops_per_sample)
        assert point.achieved_flops_per_s == pytest.approx(point.flops_per_sample * point.samples_per_s)
        # The CPU peak is computed at the base clock a hypervisor reports, so MFU vs it can pass 100%.
        assert point.mfu_vs_spec == pytest.approx(point.achieved_flops_per_s / peak_flops("cpu", "fp32").value)
        assert point.roofline_bound in ("compute", "memory")
        assert point.top1_agreement == 1.0 and point.task_accuracy > 0.95
        assert point.energy_how in ("measured", "estimated", None)


def test_interrupted_sweep_resumes_and_measures_each_point_once(tmp_path, cnn):
    spec = build_spec({"backends": ["ort"], "precisions": ["fp32", "int8-dynamic"], "batch_sizes": [1, 4], **FAST})
    with open_store(tmp_path / "r.db") as store:
        first = Recorder(interrupt_after=2)
        with pytest.raises(KeyboardInterrupt):
            sweep(cnn, spec, store, first)
        interrupted = store.list_runs()[0]
        assert interrupted.status == "interrupted"
        kept = {m.variant_key: m.started_at for m in store.measurements(interrupted.id)}
        assert len(kept) == 2

        second = Recorder()
        result = sweep(cnn, spec, store, second)
        assert result.resumed and result.run_id == interrupted.id
        assert result.reused == 2 and result.measured == 2
        points = store.measurements(result.run_id)
    assert len({p.variant_key for p in points}) == len(points) == 4
    assert all(p.started_at == kept[p.variant_key] for p in points if p.variant_key in kept)
    assert store_status(tmp_path / "r.db", result.run_id) == "complete"


def store_status(path, run_id):
    with open_store(path) as store:
        return store.get_run(run_id).status


KILLER = """
import os, signal, torch

class KillsAtBatch4(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(6, 3)

    def forward(self, x):
        if x.shape[0] == 4 and not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export():
            os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer would
        return self.linear(x)

def make():
    torch.manual_seed(0)
    return KillsAtBatch4().eval(), torch.randn(2, 6)
"""


def test_point_killed_mid_run_is_recorded_and_stops_the_batch_growth(tmp_path, monkeypatch):
    (tmp_path / "killer_model.py").write_text(KILLER)
    monkeypatch.syspath_prepend(str(tmp_path))
    model = load_model("killer_model:make")
    spec = build_spec({"backends": ["torch"], "precisions": ["fp32"], "max_batch": 8, **FAST})
    with open_store(tmp_path / "r.db") as store:
        result = sweep(model, spec, store, Recorder())
        points = {m.variant_key: m for m in store.measurements(result.run_id)}
    assert points["torch/cpu/fp32/b2"].status in ("ok", "unstable")
    killed = points["torch/cpu/fp32/b4"]
    assert killed.status == "failed" and "SIGKILL" in killed.reason
    assert "torch/cpu/fp32/b8" not in points
    assert result.families[0].stop_reason.startswith("memory ran out at batch 4")
    assert result.families[0].sweet_spot_batch == 2


def test_unavailable_variants_are_recorded_as_skipped(tmp_path, cnn):
    spec = build_spec({"backends": ["ort"], "precisions": ["fp16"], "batch_sizes": [1], **FAST})
    with open_store(tmp_path / "r.db") as store:
        result = sweep(cnn, spec, store, Recorder())
        (point,) = store.measurements(result.run_id)
    assert point.status == "skipped" and "CPUExecutionProvider" in point.reason


@pytest.mark.parametrize(
    "text,field",
    [
        ("precisions: [int4]", "precisions"),
        ("batchsizes: [1, 2]", "batchsizes"),
        ("batch_sizes: [0]", "batch_sizes"),
        ("backends: [tensorflow]", "backends"),
        ("budget_s: fast", "budget_s"),
    ],
)
def test_bad_sweep_file_names_the_field(tmp_path, text, field):
    path = tmp_path / "sweep.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(HwfitError, match=f"field '{field}'"):
        load_sweep_file(path)


def test_sweep_file_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("- ort\n- openvino\n")
    with pytest.raises(HwfitError, match="must hold a mapping"):
        load_sweep_file(path)


def test_processes_that_disagree_make_a_point_unstable():
    from hwfit.profile.sweep import combine_processes
    from hwfit.store import LatencyStats, Measurement

    def made(p50):
        stats = LatencyStats(20, p50, p50, p50, p50, p50, 0.1, p50, p50, p50 * 0.99, p50 * 1.01)
        return Measurement("ort/cpu/fp32/b8", {"batch_size": 8}, "ok", latency=stats, wall_s=5.0)

    steady = combine_processes([made(133.0), made(134.0), made(132.5)], target_rel=0.02)
    assert steady.status == "ok" and steady.latency.p50_ms == 133.0 and steady.wall_s == 15.0
    noisy = combine_processes([made(133.0), made(165.0), made(140.0)], target_rel=0.02)
    assert noisy.status == "unstable" and noisy.latency.p50_ms == 140.0
    assert "24.1% across 3 processes" in noisy.reason
    # every process is kept as one round, in the order they ran, for regression checks
    assert [r["p50_ms"] for r in noisy.rounds] == [133.0, 165.0, 140.0]


def test_replicas_are_measured_together_as_one_point(tmp_path, cnn):
    spec = build_spec(
        {"backends": ["ort"], "precisions": ["fp32"], "batch_sizes": [2], "threads": [1], "replicas": [2], **FAST}
    )
    with open_store(tmp_path / "r.db") as store:
        result = sweep(cnn, spec, store, Recorder())
        (point,) = store.measurements(result.run_id)
    assert point.variant_key == "ort/cpu/fp32/b2/t1/replicas=2"
    assert point.status in ("ok", "unstable"), point.reason
    rates = point.details["replica_samples_per_s"]
    assert len(rates) == 2 and all(rate > 0 for rate in rates)
    assert point.samples_per_s == pytest.approx(sum(rates))
    assert point.top1_agreement == 1.0
    # the replicas' energy: metered in each over the shared window, combined once (here the CPU estimate)
    assert point.energy_j_per_sample and point.energy_j_per_sample > 0, point.energy_note
    if point.energy_how == "estimated":
        assert "2 replicas' CPU time added" in point.energy_note


def test_replicas_energy_counts_the_idle_power_once():
    """K replicas each estimate their own process's energy; the joint figure applies the power model
    once to their added CPU time, so the CPU's idle power is not counted K times."""
    from hwfit.profile.replicas import ReplicaReport, _fill_joint_energy
    from hwfit.store import Measurement
    from hwfit.telemetry import EnergyReading
    from hwfit.telemetry.estimate import CpuPowerModel

    model = CpuPowerModel()
    one = model.estimate(2.0, 1.6)
    if one is None:
        pytest.skip("the catalog has no CPU power figures for this CPU")
    reading = EnergyReading("cpu", 2.0, one.joules, "estimated", "estimate", one.formula, "no counter", 0.0, 0.4)
    outcomes = [ReplicaReport(i, "ok", [0.01] * 100, 2.0, 0, reading, 1.6) for i in range(2)]
    measurement = Measurement("k", {}, "ok", samples_per_s=200.0)
    _fill_joint_energy(measurement, outcomes)
    joint = model.estimate(2.0, 3.2)
    assert measurement.energy_j_per_sample == pytest.approx(joint.joules / 2.0 / 200.0)
    assert measurement.energy_j_per_sample < 2 * one.joules / 2.0 / 200.0  # not the two readings added
    assert measurement.energy_how == "estimated"


LINEAR = """
import torch

def make():
    torch.manual_seed(0)
    return torch.nn.Linear(6, 3).eval(), torch.randn(2, 6)
"""


def _emulated_growth(tmp_path, monkeypatch, curve: str, **settings):
    """Grow the batch on an EMULATED device whose service time follows `curve` (batch:ms points):
    the real sweep, isolation, statistics and store, with a latency curve chosen by the test. The
    model is a small Linear with no evaluation set, so each point spends its time on the curve."""
    (tmp_path / "linear_model.py").write_text(LINEAR)
    monkeypatch.syspath_prepend(str(tmp_path))
    model = load_model("linear_model:make")
    spec = build_spec(
        {
            "backends": ["emulated"],
            "devices": ["emulated"],
            "precisions": ["fp32"],
            "knobs": {"emulated": {"curve": [curve]}},
            **FAST,
            **settings,
        }
    )
    with open_store(tmp_path / "r.db") as store:
        result = sweep(model, spec, store, Recorder())
        points = {m.variant["batch_size"]: m for m in store.measurements(result.run_id)}
        recorded = store.run_extra(result.run_id)["families"]
    return result, points, recorded


def test_batch_growth_stops_when_throughput_stops_rising(tmp_path, monkeypatch):
    # samples/s: b1 200, b2 333 (+67%), b4 267 (-20%: below +3% even with ~1.7 ms of per-call
    # overhead on a busy machine), so growth stops at 4 and b8 is never measured.
    result, points, recorded = _emulated_growth(tmp_path, monkeypatch, "1:5,2:6,4:15", max_batch=8)
    assert sorted(points) == [1, 2, 4]
    assert all(p.status in ("ok", "unstable") for p in points.values())
    assert all(p.energy_j_per_sample is None and "EMULATED" in p.energy_note for p in points.values())
    rates = {batch: points[batch].samples_per_s for batch in points}
    assert rates[2] > 1.03 * rates[1] and rates[4] < 1.03 * rates[2]
    (family,) = result.families
    assert family.sweet_spot_batch == 2 and family.best_samples_per_s == rates[2]
    assert " from batch 2 to 4 (growth needs +3%): sweet spot found" in family.stop_reason
    assert family.stop_reason.startswith(("throughput rose only", "throughput fell"))
    assert recorded == [family.to_dict()]


def test_batch_growth_stops_at_the_latency_cap(tmp_path, monkeypatch):
    # throughput still rises (200 -> 222 samples/s), but batch 2's 9 ms p50 is past the 7 ms cap:
    # growth stops there and b4 is never measured
    result, points, recorded = _emulated_growth(tmp_path, monkeypatch, "1:5,2:9", max_batch=4, max_latency_ms=7)
    assert sorted(points) == [1, 2]
    assert points[1].latency.p50_ms < 7 < points[2].latency.p50_ms
    assert points[2].samples_per_s > 1.03 * points[1].samples_per_s  # not the throughput rule
    (family,) = result.families
    assert re.fullmatch(r"batch 2 takes \d+ ms \(p50\), above the 7 ms cap", family.stop_reason), family.stop_reason
    # the faster batch 2 is over the cap, so the sweet spot is batch 1, the best within it
    assert family.sweet_spot_batch == 1 and family.best_samples_per_s == points[1].samples_per_s
    assert recorded == [family.to_dict()]
