"""A check's report for people and machines: figures formatted with units and arrows, a Markdown
summary (GitHub step summary or PR comment), and JUnit XML with one test case per variant × metric."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree

from hwfit.check.gate import CheckReport, MetricResult

VERDICT_MARK = {
    "fail": "❌ fail",
    "warn": "⚠️ warn",
    "pass": "✅ pass",
    "improved": "✅ improved",
    "incomparable": "⛔ not compared",
}
HEADLINE = {
    "fail": "❌ regression",
    "incomparable": "⛔ could not compare",
    "warn": "⚠️ pass, with warnings",
    "pass": "✅ pass",
    "improved": "✅ pass (improved)",
}


def format_value(result: MetricResult, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    unit = result.metric.unit
    if unit == "bytes":
        return f"{value / 2**20:.1f} MiB"
    if unit == "ms":
        return f"{value:.4g} ms"
    if unit == "samples/s":
        return f"{value:.1f}/s"
    if unit == "J/sample":
        return f"{value:.4g} J"
    return f"{value:.4f}"


def format_change(result: MetricResult) -> str:
    """`↑ +5.6% [+4.9%, +6.8%]`: the arrow is the value's direction; the verdict says good or bad."""
    if result.change is None:
        return "—"
    arrow = "↑" if result.change > 0 else "↓" if result.change < 0 else "→"
    interval = ""
    if result.ci_low is not None and result.ci_high is not None:
        interval = f" [{result.metric.describe(result.ci_low)}, {result.metric.describe(result.ci_high)}]"
    return f"{arrow} {result.metric.describe(result.change)}{interval}"


def format_p(result: MetricResult) -> str:
    return "—" if result.p_worse is None else f"{result.p_worse:.3g}"


def markdown(report: CheckReport) -> str:
    """The summary as GitHub renders it: headline, how it was measured, one table row per
    variant × metric, the environment diff, and notes."""
    lines = [f"## hwfit check: {HEADLINE[report.verdict]}", ""]
    lines.append(
        f"Model `{report.model}` (`{report.model_hash[:12]}`) against "
        + (f"`{report.baseline}`" if report.baseline else "no baseline (recording one)")
        + f": {_mode_text(report)}; {report.settings.rounds.rounds} rounds of {report.settings.rounds.round_s:g} s, "
        f"fail when the one-sided {_test_name(report)} p < {report.settings.thresholds.alpha:g} and the change "
        f"passed the metric's threshold ({report.settings.thresholds.origin}). "
        f"{report.processes} processes, {report.wall_s:.0f} s."
    )
    lines.append("")
    if report.variants and any(v.metrics for v in report.variants) or any(v.reason for v in report.variants):
        lines += [
            "| variant | metric | baseline | candidate | change [95% CI] | p (worse) | verdict |",
            "|---|---|---:|---:|---|---:|---|",
        ]
        for variant in report.variants:
            if variant.reason:
                lines.append(
                    f"| `{variant.key}` | — | — | — | — | — | {VERDICT_MARK['incomparable']}: {_cell(variant.reason)} |"
                )
            for result in variant.metrics:
                verdict = VERDICT_MARK[result.verdict]
                if result.verdict in ("fail", "warn", "incomparable"):
                    verdict += f": {_cell(result.reason)}"
                lines.append(
                    f"| `{variant.key}` | {result.metric.label} | {format_value(result, result.baseline_median)} | "
                    f"{format_value(result, result.candidate_median)} | {format_change(result)} | {format_p(result)} | "
                    f"{verdict} |"
                )
        lines.append("")
    elif report.mode == "record":
        lines += ["Recorded: " + ", ".join(f"`{v.key}`" for v in report.variants), ""]
    lines += _environment_lines(report)
    if report.notes:
        lines += ["", *[f"- {note}" for note in report.notes]]
    return "\n".join(lines) + "\n"


def _test_name(report: CheckReport) -> str:
    return "Wilcoxon signed-rank (paired rounds)" if report.mode == "interleaved" else "Mann-Whitney U"


def _mode_text(report: CheckReport) -> str:
    return {
        "interleaved": "both models measured here, interleaved A/B in fresh processes",
        "stored": "candidate measured here against the baseline's stored rounds",
        "record": "candidate measured to record a baseline",
    }[report.mode]


def _environment_lines(report: CheckReport) -> list[str]:
    if report.baseline is None:
        return []
    if not report.environment_changes:
        return ["**Environment:** the same as the baseline's."]
    lines = ["**Environment diff** (baseline → candidate):", "", "| | baseline | candidate | |", "|---|---|---|---|"]
    unsound = {change.field for change in report.unsound}
    for change in report.environment_changes:
        flag = "⚠️ timings not comparable" if change.field in unsound else ""
        lines.append(f"| {change.label} | {_cell(change.baseline)} | {_cell(change.candidate)} | {flag} |")
    return lines


def _cell(text: str | None) -> str:
    return "—" if text is None else str(text).replace("|", "\\|").replace("\n", " ")


def junit_xml(report: CheckReport) -> str:
    """JUnit XML: a test suite per check, a test case per variant × metric (a variant that could not
    be measured is one test case in error); fail -> <failure>, incomparable -> <error>, warn -> passed
    with the warning in <system-out>."""
    cases = []
    for variant in report.variants:
        if variant.reason:
            cases.append((variant.key, "measurement", "incomparable", variant.reason, ""))
        for result in variant.metrics:
            detail = (
                f"baseline {format_value(result, result.baseline_median)}, candidate "
                f"{format_value(result, result.candidate_median)}, change {format_change(result)}, p {format_p(result)}"
            )
            cases.append((variant.key, result.metric.name, result.verdict, result.reason, detail))
    failures = sum(1 for case in cases if case[2] == "fail")
    errors = sum(1 for case in cases if case[2] == "incomparable")
    suites = ElementTree.Element(
        "testsuites", name="hwfit check", tests=str(len(cases)), failures=str(failures), errors=str(errors)
    )
    suite = ElementTree.SubElement(
        suites,
        "testsuite",
        name=f"hwfit check {report.model}",
        tests=str(len(cases)),
        failures=str(failures),
        errors=str(errors),
        skipped="0",
        time=f"{report.wall_s:.3f}",
    )
    for variant_key, metric, verdict, reason, detail in cases:
        case = ElementTree.SubElement(suite, "testcase", classname=f"hwfit.check.{variant_key}", name=metric, time="0")
        if verdict == "fail":
            ElementTree.SubElement(case, "failure", message=reason, type="regression").text = detail
        elif verdict == "incomparable":
            ElementTree.SubElement(case, "error", message=reason, type="incomparable").text = detail or reason
        elif detail:
            ElementTree.SubElement(case, "system-out").text = f"{verdict}: {reason}; {detail}"
    ElementTree.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(suites, encoding="unicode") + "\n"
