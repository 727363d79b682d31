"""The SVG charts: scales and ticks, marks placed where the data say, unusable values left out,
text escaped, bars for zero values still visible."""

import re
import xml.etree.ElementTree as ElementTree

import pytest

from hwfit.report.svg import (
    Bar,
    BarChart,
    Chart,
    Point,
    Rule,
    Series,
    make_scale,
    render_bar_chart,
    render_chart,
    tick_text,
)

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)  # also proves the markup is well-formed XML


def marks(root: ElementTree.Element) -> list[ElementTree.Element]:
    return [el for el in root.iter() if el.get("class") == "mark"]


def test_log_scale_spans_whole_decades_with_decade_ticks():
    scale = make_scale([3.0, 4500.0, -1.0, 0.0, float("nan")], log=True)  # unusable values ignored
    assert (scale.low, scale.high) == (1.0, 10_000.0)
    assert {1.0, 10.0, 100.0, 1000.0, 10_000.0} <= set(scale.ticks)
    assert scale.to_px(100.0, 0, 400) == pytest.approx(200.0)  # 2 of 4 decades


def test_short_log_range_gets_1_2_5_ticks():
    scale = make_scale([1.5, 40.0], log=True)
    assert {2.0, 5.0, 20.0, 50.0} <= set(scale.ticks)


def test_linear_scale_is_nice_and_covers_the_data():
    scale = make_scale([0.7, 13.2], log=False)
    assert scale.low == 0.0 and scale.high >= 13.2
    steps = {round(b - a, 9) for a, b in zip(scale.ticks, scale.ticks[1:])}
    assert len(steps) == 1 and steps.pop() in (2.0, 2.5, 5.0)
    assert make_scale([6000.0, 6500.0], log=False, zero=False).low >= 5000.0


def test_tick_text_uses_si_prefixes():
    assert tick_text(1e12) == "1T" and tick_text(2.5e9) == "2.5G"
    assert tick_text(0.001) == "0.001" and tick_text(0) == "0"


def test_chart_places_marks_and_counts_them():
    chart = Chart(
        "c1",
        "title",
        "x",
        "y",
        (
            Series("a", (Point(1, 10, "first"), Point(2, 20, "second")), "#123456"),
            Series("b", (Point(2, 5, "third"),), "#654321", line=False, marker="diamond"),
        ),
        y_zero=True,
    )
    root = parse(render_chart(chart))
    found = marks(root)
    assert [m.get("data-tip") for m in found] == ["first", "second", "third"]
    assert root.get("data-expected-marks") == "3" and root.get("data-chart") == "c1"
    circles = [m for m in found if m.tag == SVG + "circle"]
    (x1, y1), (x2, y2) = [(float(c.get("cx")), float(c.get("cy"))) for c in circles]
    assert x2 > x1 and y2 < y1  # larger y is drawn higher
    assert len([el for el in root.iter() if el.get("class") == "series-line"]) == 1  # b has no line


def test_log_chart_leaves_out_values_it_cannot_place():
    points = (Point(1, 1), Point(0, 5), Point(10, -2), Point(100, 1000))
    chart = Chart("c2", "t", "x", "y", (Series("s", points, "#000"),), x_log=True, y_log=True)
    root = parse(render_chart(chart))
    assert root.get("data-expected-marks") == "2" and len(marks(root)) == 2


def test_rule_that_does_not_extend_is_drawn_only_inside_the_data():
    series = (Series("s", (Point(1, 1), Point(2, 2)), "#000"),)
    far = Chart("c3", "t", "x", "y", series, rules=(Rule("y", 500.0, "far", extend=False),))
    near = Chart("c4", "t", "x", "y", series, rules=(Rule("y", 500.0, "widened"),))
    assert "far" not in render_chart(far)
    assert "widened" in render_chart(near)


def test_text_is_escaped():
    evil = '<script>alert(1)</script> & "q"'
    chart = Chart("c5", evil, evil, evil, (Series(evil, (Point(1, 2, evil, evil),), "#000"),))
    svg = render_chart(chart)
    assert "<script>" not in svg
    root = parse(svg)
    assert marks(root)[0].get("data-tip") == evil  # escaped in the markup, exact once parsed


def test_bar_chart_zero_value_still_drawn_and_nan_left_out():
    bars = (Bar("zero", 0.0, "#111"), Bar("one", 1.0, "#222"), Bar("nan", float("nan"), "#333"))
    chart = BarChart("b1", "bars", "J", bars, legend=(("estimated", "#ff7f0e"),))
    svg = render_bar_chart(chart)
    root = parse(svg)
    widths = [float(m.get("width")) for m in marks(root)]
    assert len(widths) == 2 and 0 < widths[0] < widths[1]
    assert root.get("data-expected-marks") == "2"
    assert "estimated" in svg and re.search(r">1\b", svg)
