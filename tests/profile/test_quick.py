"""The quick check runs each variant in its own process and never drops one silently."""

import pytest

from hwfit.core import CHECK_STATUSES, Variant
from hwfit.profile import check_dict, check_reason, check_verdict, quick_check
from hwfit.store import Measurement


def test_quick_check_measures_reports_and_isolates(cnn):
    candidates = [
        (Variant("ort", "cpu", "fp32", 4), None),
        (Variant("ort", "cpu", "fp16", 4), "fp16 on cpu: not supported by CPUExecutionProvider"),
        # A knob the backend rejects at load: recorded as failed with the reason, the run goes on.
        (Variant("ort", "cpu", "fp32", 4, knobs=(("opt_level", "turbo"),)), None),
        (Variant("emulated", "emulated", "fp32", 4, knobs=(("curve", "1:1,4:2"),)), None),
    ]
    results = quick_check(cnn, candidates, seconds=0.3, rounds=3)
    by_key = {r.variant_key: r for r in results}
    assert len(results) == 4

    ok = by_key["ort/cpu/fp32/b4"]
    assert check_verdict(ok) == "ok" and ok.samples_per_s > 0 and ok.latency.count >= 3
    assert ok.top1_agreement == 1.0 and ok.task_accuracy > 0.95

    assert check_verdict(by_key["ort/cpu/fp16/b4"]) == "unavailable"
    failed = by_key["ort/cpu/fp32/b4/opt_level=turbo"]
    assert check_verdict(failed) == "failed" and "opt_level 'turbo'" in failed.reason

    # Emulated outputs are zeros: the accuracy check must not let them pass as accurate.
    emulated = by_key["emulated/emulated/fp32/b4/curve=1:1,4:2"]
    assert check_verdict(emulated) == "inaccurate"
    assert emulated.latency.p50_ms == pytest.approx(2.0, abs=0.5)


def _checked(status, reason=None, within_tolerance=None):
    """A checked variant as quick_check records it; compared with the reference only when
    `within_tolerance` is given."""
    variant = Variant("ort", "cpu", "fp32", 4)
    measurement = Measurement(variant.key, variant.to_dict(), status, reason, details={"notes": ["a note"]})
    if within_tolerance is not None:
        measurement.cosine_mean, measurement.cosine_min, measurement.max_abs_error = 0.5, 0.1, 3.0
        measurement.details.update(
            {
                "within_tolerance": within_tolerance,
                "accuracy_verdict": f"cosine_min 0.1000 {'>=' if within_tolerance else '<'} 0.99",
            }
        )
    return measurement


def test_check_verdict_is_derived_from_the_measurement_and_json_keeps_its_keys():
    checked = {
        "unavailable": _checked("skipped", "fp16 on cpu: not supported"),
        "failed": _checked("failed", "RuntimeError: boom"),
        "inaccurate": _checked("ok", within_tolerance=False),
        "ok": _checked("ok", within_tolerance=True),
    }
    assert set(checked) == set(CHECK_STATUSES)
    for verdict, measurement in checked.items():
        assert check_verdict(measurement) == verdict
        assert measurement.status in ("ok", "failed", "skipped")  # the Measurement keeps a point status

    # An inaccurate variant's reason is its accuracy verdict; a skip or failure keeps its own reason.
    assert check_reason(checked["inaccurate"]) == "cosine_min 0.1000 < 0.99"
    assert check_reason(checked["unavailable"]) == "fp16 on cpu: not supported"
    assert check_reason(checked["ok"]) is None

    data = check_dict(checked["inaccurate"])
    assert data["status"] == "inaccurate" and data["point_status"] == "ok"
    assert data["reason"] == "cosine_min 0.1000 < 0.99" == data["accuracy_verdict"]
    assert data["variant"]["key"] == "ort/cpu/fp32/b4" and data["notes"] == ["a note"]
    assert data["agreement"] == {"max_abs_error": 3.0, "cosine_mean": 0.5, "cosine_min": 0.1, "top1_agreement": None}
    assert data["latency_ms_p50"] is None and data["runs"] == 0  # not timed
    assert check_dict(checked["unavailable"])["agreement"] is None
