"""Threshold files: defaults, file-wide and per-variant overrides (exact keys and patterns), and
every malformed file refused with the field named."""

import textwrap

import pytest

from hwfit.check import DEFAULT_METRICS, CheckError, load_thresholds


def _write(tmp_path, text):
    path = tmp_path / "thresholds.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults_cover_every_round_metric_and_fail_above_warn():
    thresholds = load_thresholds(None)
    metrics = {m.name: m for m in thresholds.for_variant("ort/cpu/fp32/b1")}
    assert set(metrics) == set(DEFAULT_METRICS)
    assert thresholds.alpha == 0.01
    assert all(m.warn <= m.fail for m in metrics.values())
    assert metrics["samples_per_s"].direction == "max" and metrics["p50_ms"].direction == "min"


def test_overrides_apply_in_order_defaults_then_metrics_then_matching_variants(tmp_path):
    path = _write(
        tmp_path,
        """
        alpha: 0.005
        metrics:
          p99_ms: {fail: 0.2, warn: 0.1}
          energy_j_per_sample: {ignore: true}
        variants:
          "ort/cpu/int8-*":
            accuracy_loss: {fail: 0.03}
          "ort/cpu/int8-dynamic/b8":
            p99_ms: {fail: 0.5}
        """,
    )
    thresholds = load_thresholds(path)
    assert thresholds.alpha == 0.005
    fp32 = {m.name: m for m in thresholds.for_variant("ort/cpu/fp32/b8")}
    assert fp32["p99_ms"].fail == 0.2 and fp32["p99_ms"].warn == 0.1
    assert "energy_j_per_sample" not in fp32
    assert fp32["accuracy_loss"].fail == DEFAULT_METRICS["accuracy_loss"].fail
    int8 = {m.name: m for m in thresholds.for_variant("ort/cpu/int8-dynamic/b8")}
    assert int8["accuracy_loss"].fail == 0.03 and int8["p99_ms"].fail == 0.5 and int8["p99_ms"].warn == 0.1


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("metrics:\n  p50_ms: {fail: lots}\n", "field 'metrics.p50_ms.fail'"),
        ("metrics:\n  latency: {fail: 0.1}\n", "unknown metric 'latency'"),
        ("metrics:\n  p50_ms: {fial: 0.1}\n", "field 'metrics.p50_ms.fial': unknown field"),
        ("alpha: 2\n", "field 'alpha'"),
        ("variants:\n  'ort/*':\n    p99_ms: {fail: -1}\n", "field 'variants.ort/*.p99_ms.fail'"),
        ("metrics:\n  p50_ms: {fail: 0.01, warn: 0.05}\n", "field 'metrics.p50_ms': warn (0.05) must not exceed fail"),
        ("metrics: [p50_ms\n", "is not valid YAML"),
        ("- p50_ms\n", "must hold a mapping"),
    ],
)
def test_a_malformed_file_is_refused_naming_the_field(tmp_path, text, named):
    path = _write(tmp_path, text)
    with pytest.raises(CheckError) as error:
        load_thresholds(path)
    assert named in str(error.value) and str(path) in str(error.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(CheckError, match="thresholds file .*nothing.yaml not found"):
        load_thresholds(tmp_path / "nothing.yaml")
