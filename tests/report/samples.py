"""Sample data for the report tests: hand-made measurements of two families (ok, unstable, failed
and skipped points), ceilings, sweet spots, and a real results database holding them as run 1 of
the example plan's model."""

from pathlib import Path

from hwfit.store import Environment, LatencyStats, Measurement, open_store

EXAMPLE_PLAN = Path(__file__).parents[1] / "plan" / "data" / "example-plan.yaml"
MODEL_HASH = "0123456789abcdef"  # the example plan's model hash
XSS = "<script>alert('owned')</script>"


def environment(**changes) -> Environment:
    values = dict(
        hwfit_version="0.1.0",
        hwfit_commit="abc1234def",
        python="3.11.7",
        numpy="2.0.0",
        onnxruntime="1.18.0",
        torch="2.13.0+cpu",
        openvino=None,
        cuda=None,
        nvidia_driver=None,
        cpu_model="Test CPU <8 cores> @ 2.0GHz",
        gpu_names=(),
        hostname_hash="0123456789ab",
        extra={"os": "Linux"},
    )
    values.update(changes)
    return Environment(**values)


def timed(
    key: str,
    precision: str,
    batch: int,
    p50_ms: float,
    status: str = "ok",
    reason: str | None = None,
    energy_how: str = "estimated",
) -> Measurement:
    """A timed point: p99 = 1.5 x p50, samples/s = batch / p50, FLOPs and bytes that grow with the batch."""
    samples_per_s = batch / p50_ms * 1000.0
    flops_per_sample = 1.0e8  # 50 to 100 GFLOP/s: under the ceilings, as real points are
    return Measurement(
        variant_key=key,
        variant={
            "backend": "ort",
            "device": "cpu",
            "precision": precision,
            "batch_size": batch,
            "threads": 2,
            "knobs": {},
        },
        status=status,
        reason=reason,
        latency=LatencyStats(
            count=300,
            p50_ms=p50_ms,
            p90_ms=p50_ms * 1.2,
            p99_ms=p50_ms * 1.5,
            p999_ms=p50_ms * 2,
            mean_ms=p50_ms * 1.05,
            std_ms=0.1,
            min_ms=p50_ms * 0.9,
            max_ms=p50_ms * 3,
            ci95_low_ms=p50_ms * 0.99,
            ci95_high_ms=p50_ms * 1.01,
        ),
        samples_per_s=samples_per_s,
        peak_rss_delta_bytes=52_000_000,
        flops_per_sample=flops_per_sample,
        achieved_flops_per_s=flops_per_sample * samples_per_s,
        mfu_vs_measured=flops_per_sample * samples_per_s / 2.0e11,
        mfu_vs_spec=flops_per_sample * samples_per_s / 4.0e11,
        arithmetic_intensity=3.0 * batch,
        roofline_bound="memory" if 3.0 * batch < 4.76 else "compute",
        energy_j_per_sample=0.5 * p50_ms / batch,
        energy_how=energy_how,
        energy_note="TDP 65 W x latency / batch" if energy_how == "estimated" else "RAPL package counter",
        max_abs_error=1e-5,
        cosine_mean=0.999999 if precision == "fp32" else 0.9937,
        cosine_min=0.99999 if precision == "fp32" else 0.981,
        top1_agreement=None,
        task_accuracy=None,
        started_at="2026-11-24T08:00:00+00:00",
        wall_s=4.5,
    )


def sample_points() -> list[Measurement]:
    return [
        timed("ort/cpu/fp32/b1/t2", "fp32", 1, 2.0, energy_how="measured"),
        timed("ort/cpu/fp32/b2/t2", "fp32", 2, 3.5),
        timed("ort/cpu/fp32/b4/t2", "fp32", 4, 6.5),
        timed("ort/cpu/fp32/b8/t2", "fp32", 8, 13.0),
        timed("ort/cpu/int8-dynamic/b1/t2", "int8-dynamic", 1, 1.25),
        timed(
            "ort/cpu/int8-dynamic/b2/t2",
            "int8-dynamic",
            2,
            2.0,
            status="unstable",
            reason="p50 differs by 9.1% across 2 processes",
        ),
        Measurement(
            "ort/cpu/int8-dynamic/b4/t2",
            {
                "backend": "ort",
                "device": "cpu",
                "precision": "int8-dynamic",
                "batch_size": 4,
                "threads": 2,
                "knobs": {},
            },
            "failed",
            reason=f"memory ran out {XSS} & more",
            wall_s=1.25,
        ),
        Measurement(
            "openvino/cpu/bf16/b1/t2",
            {"backend": "openvino", "device": "cpu", "precision": "bf16", "batch_size": 1, "threads": 2, "knobs": {}},
            "skipped",
            reason="openvino is not installed",
        ),
    ]


CEILINGS = {
    "cpu": {"matmul_flops": {"fp32": 2.0e11, "bf16": 3.8e11}, "mem_bandwidth": 4.2e10},
    "cuda:0": {"error": "no NVIDIA driver"},
}
FAMILIES = [
    {
        "family": "ort/cpu/fp32/t2",
        "sweet_spot_batch": 4,
        "best_samples_per_s": 615.38,
        "stop_reason": "throughput rose only 0.0% from batch 4 to 8 (growth needs +3%): sweet spot found",
    },
    {
        "family": "ort/cpu/int8-dynamic/t2",
        "sweet_spot_batch": 2,
        "best_samples_per_s": 1000.0,
        "stop_reason": "memory ran out at batch 4",
    },
    {
        "family": "openvino/cpu/bf16/t2",
        "sweet_spot_batch": None,
        "best_samples_per_s": None,
        "stop_reason": "cannot run here: openvino is not installed",
    },
]


def make_store(
    path: Path, points: list[Measurement] | None = None, extra: bool = True, model_hash: str = MODEL_HASH
) -> Path:
    """A database with one complete run (id 1) of `points` (default: sample_points())."""
    with open_store(path) as store:
        run = store.start_run("minilm", "builtin:minilm", model_hash, "sweep-1", {"model": "minilm"}, environment())
        for point in sample_points() if points is None else points:
            store.record(run.id, point)
        if extra:
            store.set_run_extra(run.id, "ceilings", CEILINGS)
            store.set_run_extra(run.id, "families", FAMILIES)
        store.finish_run(run.id, "complete")
    return path
