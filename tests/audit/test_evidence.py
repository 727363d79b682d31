"""What the store says about a served configuration: FLOPs per inference, the batch factor at the
served batch, the best precision within tolerance, and the best configuration overall."""

import pytest

from hwfit.audit import read_evidence, served_variant
from hwfit.core import Variant
from hwfit.store import LatencyStats, Measurement, open_store
from tests.store.samples import environment


def point(key: str, samples_per_s: float, p50_ms: float, cosine: float = 1.0) -> Measurement:
    variant = Variant.parse(key)
    return Measurement(
        variant_key=key,
        variant=variant.to_dict(),
        status="ok",
        latency=LatencyStats(
            100, p50_ms, p50_ms, p50_ms * 1.1, p50_ms * 1.2, p50_ms, 0.1, p50_ms, p50_ms * 1.3, p50_ms, p50_ms
        ),
        samples_per_s=samples_per_s,
        flops_per_sample=2.0e9,
        cosine_mean=cosine,
    )


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "r.db") as results:
        run = results.start_run("minilm", "builtin:minilm", "hash", "s", {}, environment())
        for measurement in (
            point("ort/cpu/fp32/b1/t1", 40.0, 25.0),
            point("ort/cpu/fp32/b8/t1", 70.0, 114.0),
            point("ort/cpu/int8-dynamic/b1/t1", 90.0, 11.0, cosine=0.994),
            point("ort/cpu/int8-dynamic/b8/t1", 130.0, 61.0, cosine=0.994),
            point("ort/cpu/int8-static/b8/t1", 180.0, 44.0, cosine=0.95),  # fast but outside 0.01
            point("ort/cpu/int8-dynamic/b1/t1/replicas=2", 250.0, 8.0, cosine=0.994),
        ):
            results.record(run.id, measurement)
        results.finish_run(run.id, "complete")
        yield results


def test_the_batch_factor_is_the_best_batch_over_the_served_one_with_its_run(store):
    evidence = read_evidence(store, "minilm", served_variant("ort/cpu/fp32/b1/t1", 1), 0.01)
    assert evidence.found and evidence.flops_per_sample()[0] == 2.0e9
    factor = evidence.batch_factor(1.2)  # mean batch served 1.2: nearest measured is batch 1
    assert factor.value == pytest.approx(70 / 40) and factor.better == "batch 8"
    assert "run 1" in factor.evidence and "70 samples/s at batch 8" in factor.evidence
    assert evidence.batch_factor(7.0).value == 1.0  # already at the best measured batch


def test_the_precision_factor_keeps_to_the_accuracy_tolerance(store):
    evidence = read_evidence(store, "minilm", served_variant("ort/cpu/fp32/b8/t1", 1), 0.01)
    factor, winner = evidence.precision_factor()
    assert factor.better == "int8-dynamic" and winner.variant.key == "ort/cpu/int8-dynamic/b8/t1"
    assert factor.value == pytest.approx(130 / 70)
    loose = read_evidence(store, "minilm", served_variant("ort/cpu/fp32/b8/t1", 1), 0.1)
    assert loose.precision_factor()[0].better == "int8-static"  # 0.05 loss admitted at 0.1


def test_the_best_configuration_counts_every_backend_precision_and_layout_within_tolerance(store):
    evidence = read_evidence(store, "minilm", served_variant("ort/cpu/fp32/b1/t1", 1), 0.01)
    assert evidence.best_admissible().variant.key == "ort/cpu/int8-dynamic/b1/t1/replicas=2"


def test_a_served_pool_of_replicas_reads_the_points_measured_with_that_many_together(store):
    served = served_variant("ort/cpu/int8-dynamic/b1/t1", 2)
    assert served.key == "ort/cpu/int8-dynamic/b1/t1/replicas=2"
    evidence = read_evidence(store, "minilm", served, 0.01)
    assert evidence.served_point(1.0).samples_per_s == 250.0
    assert read_evidence(store, "other-model", served, 0.01).found is False


def test_the_most_flops_delivered_per_precision_bounds_the_purchased_peak_from_below(store):
    evidence = read_evidence(store, "minilm", served_variant("ort/cpu/fp32/b1/t1", 1), 0.01)
    assert evidence.best_achieved("fp32").variant.key == "ort/cpu/fp32/b8/t1"  # 70 samples/s x 2 GFLOP
    assert evidence.best_achieved("int8").achieved_flops_per_s == pytest.approx(250.0 * 2.0e9)
    assert evidence.best_achieved("bf16") is None
