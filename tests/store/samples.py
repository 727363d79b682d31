"""Sample records for the store tests, also imported by the writer subprocess (writer.py)."""

import math

from hwfit.store import Environment, LatencyStats, Measurement


def environment(**changes) -> Environment:
    values = dict(
        hwfit_version="0.1.0",
        hwfit_commit="abc123",
        python="3.11.7",
        numpy="2.0.0",
        onnxruntime="1.18.0",
        torch=None,
        openvino=None,
        cuda=None,
        nvidia_driver=None,
        cpu_model="Test CPU @ 2.0GHz",
        gpu_names=(),
        hostname_hash="0123456789ab",
        extra={"os": "Linux"},
    )
    values.update(changes)
    return Environment(**values)


def full_measurement(key: str = "ort/cpu/fp32/b8/t2", scale: float = 1.0) -> Measurement:
    """Every field set, with values that catch type and precision slips (ints, tiny and huge floats, NaN)."""
    return Measurement(
        variant_key=key,
        variant={
            "backend": "ort",
            "device": "cpu",
            "precision": "fp32",
            "batch_size": 8,
            "threads": 2,
            "knobs": {"graph_opt": "all", "arena": True},
        },
        status="ok",
        reason=None,
        latency=LatencyStats(
            count=200,
            p50_ms=1.2345678901234567 * scale,
            p90_ms=1.5,
            p99_ms=2.25,
            p999_ms=3.0,
            mean_ms=1.3,
            std_ms=0.1,
            min_ms=1.0,
            max_ms=3.5,
            ci95_low_ms=1.2,
            ci95_high_ms=1.27,
        ),
        samples_per_s=6480.123456789 * scale,
        peak_rss_delta_bytes=123_456_789_012,
        device_memory_peak_bytes=0,
        h2d_ms=0.01,
        compute_ms=1.1,
        d2h_ms=0.02,
        flops_per_sample=2.2e9,
        achieved_flops_per_s=1.4256e13,
        mfu_vs_measured=0.4321,
        mfu_vs_spec=1e-300,
        arithmetic_intensity=17.5,
        roofline_bound="compute",
        energy_j_per_sample=0.0123,
        energy_how="estimated",
        energy_note="TDP 65 W × latency / batch",
        max_abs_error=math.nan,
        cosine_mean=0.999999,
        cosine_min=0.99991,
        top1_agreement=1.0,
        task_accuracy=0.915,
        load_s=0.5,
        convert_s=2.0,
        compile_s=0.0,
        wall_s=12.75,
        started_at="2026-01-02T03:04:05.678+00:00",
        details={"stop_rule": "ci_narrow", "warmup_runs": [3.1, 1.4], "nested": {"a": [1, 2, {"b": None}]}},
    )


def failed_measurement(key: str = "ort/cpu/int8-static/b8/t2") -> Measurement:
    return Measurement(
        variant_key=key,
        variant={
            "backend": "ort",
            "device": "cpu",
            "precision": "int8-static",
            "batch_size": 8,
            "threads": 2,
            "knobs": {},
        },
        status="failed",
        reason="calibration failed: no calibration inputs",
        wall_s=0.8,
    )
