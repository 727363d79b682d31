"""A check's verdicts, exit codes, the environment rule, and its Markdown and JUnit forms, on
reports built from synthetic rounds with known answers."""

import xml.etree.ElementTree as ElementTree

from hwfit.check import CheckReport, CheckSettings, compare_points, hold_unsound, junit_xml, markdown
from hwfit.check.envdiff import EnvChange
from hwfit.store import Measurement

KEY = "ort/cpu/fp32/b1"


def _point(p50, rate, loss=0.0, rounds=6):
    point = Measurement(KEY, {"backend": "ort"}, "ok")
    point.rounds = [
        {"p50_ms": p50 * (1 + 0.002 * i), "samples_per_s": rate * (1 - 0.002 * i), "accuracy_loss": loss}
        for i in range(rounds)
    ]
    return point


def _report(candidate, mode="interleaved", changes=(), allow=False, baseline=None, fail_on_stored=False):
    settings = CheckSettings(allow_env_change=allow, fail_on_stored=fail_on_stored)
    report = CheckReport("model", "c" * 64, "baseline.json", "b" * 64, mode, settings)
    report.variants = [compare_points(KEY, baseline or _point(1.0, 1000.0), candidate, settings)]
    report.environment_changes = list(changes)
    hold_unsound(report)
    return report


def test_exit_codes_pass_regression_and_incomparable():
    assert _report(_point(1.0, 1000.0)).exit_code == 0
    slower = _report(_point(1.10, 910.0))
    assert slower.verdict == "fail" and slower.exit_code == 1
    failed = Measurement(KEY, {"backend": "ort"}, "failed", "round 1: InvalidGraph")
    broken = _report(failed)
    assert broken.verdict == "incomparable" and broken.exit_code == 2
    assert "could not be measured: round 1: InvalidGraph" in broken.variants[0].reason
    one_round = _report(_point(1.0, 1000.0), baseline=_point(1.0, 1000.0, rounds=1))
    assert one_round.exit_code == 2


def test_a_lossy_candidate_fails_on_accuracy_alone():
    report = _report(_point(1.0, 1000.0, loss=0.05))
    failing = [m.metric.name for m in report.variants[0].metrics if m.verdict == "fail"]
    assert failing == ["accuracy_loss"] and report.exit_code == 1


CPU_CHANGE = EnvChange("cpu_model", "CPU model", "Old CPU", "New CPU", sound=False)


def test_other_hardware_holds_timing_failures_as_warnings_unless_allowed():
    held = _report(_point(1.10, 910.0), mode="stored", changes=[CPU_CHANGE], fail_on_stored=True)
    assert held.exit_code == 0 and held.verdict == "warn"
    assert any("Old CPU -> New CPU" in note and "--allow-env-change" in note for note in held.notes)
    allowed = _report(_point(1.10, 910.0), mode="stored", changes=[CPU_CHANGE], allow=True, fail_on_stored=True)
    assert allowed.exit_code == 1
    # both sides measured here: the baseline file's hardware does not matter
    assert _report(_point(1.10, 910.0), mode="interleaved", changes=[CPU_CHANGE]).exit_code == 1
    # accuracy does not depend on the CPU: still a failure
    assert _report(_point(1.0, 1000.0, loss=0.05), mode="stored", changes=[CPU_CHANGE]).exit_code == 1


def test_timings_against_stored_rounds_warn_unless_told_to_fail():
    held = _report(_point(1.10, 910.0), mode="stored")
    assert held.exit_code == 0 and held.verdict == "warn"
    p50 = next(m for m in held.variants[0].metrics if m.metric.name == "p50_ms")
    assert "not failed: compared with rounds stored at another time" in p50.reason
    assert any("--baseline-model" in note and "--fail-on-stored" in note for note in held.notes)
    assert _report(_point(1.10, 910.0), mode="stored", fail_on_stored=True).exit_code == 1


def test_markdown_has_the_table_arrows_and_environment_diff():
    report = _report(_point(1.10, 910.0), mode="stored", changes=[CPU_CHANGE], allow=True, fail_on_stored=True)
    text = markdown(report)
    assert text.startswith("## hwfit check: ❌ regression")
    assert "| variant | metric | baseline | candidate | change [95% CI] | p (worse) | verdict |" in text
    row = next(line for line in text.splitlines() if "p50 latency" in line)
    assert "`ort/cpu/fp32/b1`" in row and "↑ +10.0%" in row and "❌ fail" in row and "0.00108" in row
    throughput = next(line for line in text.splitlines() if "| throughput |" in line)
    assert "↓ -9.0%" in throughput
    assert "| CPU model | Old CPU | New CPU | ⚠️ timings not comparable |" in text


def test_junit_has_a_test_case_per_variant_and_metric():
    report = _report(_point(1.10, 910.0))
    suites = ElementTree.fromstring(junit_xml(report))
    cases = suites.findall("./testsuite/testcase")
    assert [case.get("name") for case in cases] == ["p50_ms", "samples_per_s", "accuracy_loss"]
    assert {case.get("classname") for case in cases} == {f"hwfit.check.{KEY}"}
    failures = [case.get("name") for case in cases if case.find("failure") is not None]
    assert failures == ["p50_ms", "samples_per_s"] and suites.get("failures") == "2"
    assert "change ↑ +10.0%" in cases[0].find("failure").text


def test_junit_marks_an_incomparable_variant_as_an_error():
    report = _report(Measurement(KEY, {"backend": "ort"}, "failed", "it crashed"))
    suites = ElementTree.fromstring(junit_xml(report))
    (case,) = suites.findall("./testsuite/testcase")
    assert case.find("error") is not None and "it crashed" in case.find("error").get("message")
    assert suites.get("errors") == "1"


def test_json_form_carries_the_verdicts_and_the_rounds():
    data = _report(_point(1.10, 910.0)).to_dict()
    assert data["verdict"] == "fail" and data["exit_code"] == 1 and data["mode"] == "interleaved"
    (variant,) = data["variants"]
    p50 = next(m for m in variant["metrics"] if m["metric"] == "p50_ms")
    assert len(p50["baseline_rounds"]) == 6 and p50["change_ci95"][0] > 0.05
