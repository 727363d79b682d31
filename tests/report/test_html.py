"""The report page built from a real database and the example plan: every section, the numbers,
their provenance labels, escaping, and the empty cases (each says why, none crashes)."""

from html.parser import HTMLParser

import pytest

from hwfit.report import SECTIONS, ReportError, build_report, write_report
from hwfit.store import Measurement, open_store

ALL_CHARTS = {"latency-throughput", "roofline", "pareto", "sweet-spot", "energy", "cost", "accuracy"}
# Numeric columns that are configuration or counts, not figures needing a provenance label.
UNLABELLED_NUMBERS = {"timed runs", "max batch", "queue delay ms", "max queue delay ms", "sweet-spot batch"}


class _Tables(HTMLParser):
    """Each table's header cells (text, has a provenance badge), which columns hold numbers, and
    which columns have a provenance badge in every row."""

    def __init__(self):
        super().__init__()
        self.tables: list[dict] = []
        self._cell: dict | None = None
        self._column = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "table":
            self.tables.append({"headers": [], "numeric": set(), "unbadged": set()})
        elif tag == "tr":
            self._column = 0
        elif tag in ("th", "td") and self.tables:
            self._cell = {"tag": tag, "text": "", "how": False, "num": "num" in (attributes.get("class") or "")}
        elif tag == "span" and self._cell is not None and "how" in (attributes.get("class") or "").split():
            self._cell["how"] = True

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None:
            table = self.tables[-1]
            if self._cell["tag"] == "th":
                table["headers"].append((self._cell["text"].strip(), self._cell["how"]))
            else:
                if self._cell["num"]:
                    table["numeric"].add(self._column)
                if not self._cell["how"]:
                    table["unbadged"].add(self._column)
            self._column += 1
            self._cell = None


def charts_in(page: str) -> set[str]:
    opening = '<svg class="chart" xmlns="http://www.w3.org/2000/svg" data-chart="'
    return {part.split('"', 1)[0] for part in page.split(opening)[1:]}


@pytest.fixture
def page(store, example_plan):
    return build_report(store, [1], example_plan, "plans/example-plan.yaml")


def test_every_section_and_chart_is_present(page):
    for section_id, heading in SECTIONS:
        assert f'<section id="{section_id}"><h2>{heading}</h2>' in page
    assert charts_in(page) == ALL_CHARTS
    assert page.count('class="empty"') == 0  # with all the data, no section is empty


def test_header_shows_model_run_status_and_the_plans_answer(page, example_plan):
    assert "<title>hwfit report — minilm</title>" in page
    assert '<span class="status status-complete">complete</span>' in page
    assert "1 failed, 5 ok, 1 skipped, 1 unstable" in page
    assert example_plan.answer in page
    assert "plans/example-plan.yaml" in page and "Fallback order: cpu-ort-int8-dynamic → cpu-torch-fp32." in page


def test_numbers_are_shown(page):
    for text in (
        "fp32 200 GFLOP/s",
        "bf16 380 GFLOP/s",
        "42 GB/s",
        "no NVIDIA driver",  # ceilings
        "fp32 4.76",  # ridge point
        "615",
        "800",
        "19.5",  # samples/s of b4, int8 b1; p99 of fp32 b8
        "max_accuracy_loss",
        "accuracy loss 0.021 &gt; 0.01",
        "252",
        "0.46",  # candidates
        "throughput rose only 0.0% from batch 4 to 8",  # sweet spot
        "RAPL package counter",
        "TDP 65 W x latency / batch",  # energy provenance
        "0.0417",  # electricity $/1M of fp32 b1: 1 J x 1e6 / 3.6e6 x $0.15
        "0.993700",
        "0.981000",  # cosine mean / min of int8
        "Test CPU &lt;8 cores&gt; @ 2.0GHz",
        "2.13.0+cpu",
        "extra.os",
        "hostname_hash",  # environment
        "openvino is not installed",
        "p50 differs by 9.1% across 2 processes",  # problem points
    ):
        assert text in page, text


def test_every_measured_column_says_how_it_was_obtained(page):
    parser = _Tables()
    parser.feed(page)
    checked = 0
    for table in parser.tables:
        for column in table["numeric"]:
            header, has_how = table["headers"][column]
            every_row_says = column not in table["unbadged"]
            if header not in UNLABELLED_NUMBERS:
                assert has_how or every_row_says, f"column {header!r} shows numbers without saying how obtained"
                checked += 1
    assert checked >= 20


def test_text_is_escaped(page, samples):
    assert samples.XSS not in page
    assert "memory ran out &lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt; &amp; more" in page


def test_page_is_self_contained(page):
    without_namespace = page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    for needle in ("http://", "https://", "<link", " src=", "@import", "url("):
        assert needle not in without_namespace, needle


def test_run_with_nothing_measured_says_why_in_every_section(tmp_path, samples):
    failed = Measurement("ort/cpu/fp32/b1/t2", {"backend": "ort", "batch_size": 1}, "failed", reason="model crashed")
    path = samples.make_store(tmp_path / "r.db", points=[failed], extra=False)
    with open_store(path) as store:
        page = build_report(store, [1])
    assert charts_in(page) == set()
    for reason in (
        "no ceilings: the runs recorded none",
        "no latency curves:",
        "no roofline:",
        "no Pareto frontier: no plan given",
        "no batch-size curves:",
        "no energy figures:",
        "no cost figures: no plan given",
        "no accuracy figures:",
        "model crashed",
    ):
        assert reason in page, reason


def test_odd_run_extras_do_not_crash(tmp_path, samples):
    point = samples.timed("ort/cpu/fp32/b1/t2", "fp32", 1, 2.0)
    point.variant.pop("batch_size")  # an old or hand-edited record: no batch size
    path = samples.make_store(tmp_path / "r.db", points=[point], extra=False)
    with open_store(path) as store:
        store.set_run_extra(1, "ceilings", {"cpu": "oops", "gpu": {"matmul_flops": [1, 2], "mem_bandwidth": "fast"}})
        store.set_run_extra(1, "families", "not a list")
        page = build_report(store, [1])
    assert "unreadable entry: &#x27;oops&#x27;" in page
    assert "roofline" in charts_in(page) and "latency-throughput" not in charts_in(page)
    assert "bNone" not in page


def test_missing_energy_gives_the_profilers_reason(tmp_path, samples):
    point = samples.timed("ort/cpu/fp32/b1/t2", "fp32", 1, 2.0)
    point.energy_j_per_sample, point.energy_how, point.energy_note = None, None, "no power counter readable"
    path = samples.make_store(tmp_path / "r.db", points=[point])
    with open_store(path) as store:
        page = build_report(store, [1])
    assert "no energy figures: no power counter readable" in page
    assert "energy" not in charts_in(page) and "latency-throughput" in charts_in(page)


def test_plan_only_report(example_plan):
    page = build_report(None, [], example_plan, "plan.yaml")
    assert charts_in(page) == {"pareto", "cost"}
    assert "no profile runs in this report" in page and "no environment: no profile run" in page


def test_several_runs_are_told_apart(tmp_path, samples):
    path = samples.make_store(tmp_path / "r.db")
    with open_store(path) as store:
        environment = samples.environment(torch=None)
        second = store.start_run("minilm", "builtin:minilm", samples.MODEL_HASH, "s2", {}, environment)
        store.record(second.id, samples.timed("ort/cpu/fp32/b1/t1", "fp32", 1, 3.0))
        page = build_report(store, [1, second.id])
    assert "run 1 · ort/cpu/fp32/t2 p50" in page and "run 2 · ort/cpu/fp32/t1 p50" in page
    assert '<td>run 2 · ort/cpu/fp32/b1/t1</td><td class="num">3</td>' in page  # roofline table row
    assert page.count("<h3>Runs ") == 2  # two environments, each listed once


def test_plan_for_another_model_is_warned_about(tmp_path, samples, example_plan):
    path = samples.make_store(tmp_path / "r.db", model_hash="feedbeef")
    with open_store(path) as store:
        page = build_report(store, [1], example_plan)
    assert "its figures do not describe this plan" in page


def test_write_report(tmp_path, store):
    written = write_report(store, [1], tmp_path / "out" / "r.html")
    assert written.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ReportError, match="cannot write the report"):
        write_report(store, [1], blocker / "r.html")
    with pytest.raises(ReportError, match="nothing to report"):
        build_report(store, [])
