"""The quick check runs each variant in its own process and never drops one silently."""

import pytest

from hwfit.core import Variant
from hwfit.profile import quick_check


def test_quick_check_measures_reports_and_isolates(cnn):
    candidates = [
        (Variant("ort", "cpu", "fp32", 4), None),
        (Variant("ort", "cpu", "fp16", 4), "fp16 on cpu: not supported by CPUExecutionProvider"),
        # A knob the backend rejects at load: recorded as failed with the reason, the run goes on.
        (Variant("ort", "cpu", "fp32", 4, knobs=(("opt_level", "turbo"),)), None),
        (Variant("emulated", "emulated", "fp32", 4, knobs=(("curve", "1:1,4:2"),)), None),
    ]
    results = quick_check(cnn, candidates, seconds=0.3, rounds=3)
    by_key = {r.variant.key: r for r in results}
    assert len(results) == 4

    ok = by_key["ort/cpu/fp32/b4"]
    assert ok.status == "ok" and ok.samples_per_s > 0 and ok.runs >= 3
    assert ok.agreement.top1_agreement == 1.0 and ok.task_accuracy > 0.95

    assert by_key["ort/cpu/fp16/b4"].status == "unavailable"
    failed = by_key["ort/cpu/fp32/b4/opt_level=turbo"]
    assert failed.status == "failed" and "opt_level 'turbo'" in failed.reason

    # Emulated outputs are zeros: the accuracy check must not let them pass as accurate.
    emulated = by_key["emulated/emulated/fp32/b4/curve=1:1,4:2"]
    assert emulated.status == "inaccurate"
    assert emulated.latency_ms_p50 == pytest.approx(2.0, abs=0.5)
