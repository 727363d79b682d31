"""The report in a real headless Chromium: the page's own script measures every chart after layout
(plot box size, marks with a non-empty box) and writes the result into the DOM, which we read back
with --dump-dom; and a screenshot is a real, non-blank PNG of the window's size."""

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from hwfit.report import write_report

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not found (`apt-get install chromium`); the browser test needs it"
)

ALL_CHARTS = {"latency-throughput", "roofline", "pareto", "sweet-spot", "energy", "cost", "accuracy"}
WITH_LINES = {"latency-throughput", "roofline", "sweet-spot"}
WINDOW = (1280, 4000)
BROWSER_TIMEOUT_S = 120


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.fixture
def report_file(tmp_path, store, example_plan) -> Path:
    return write_report(store, [1], tmp_path / "report.html", example_plan, "example-plan.yaml")


def chart_tags(dom: str) -> dict[str, dict[str, str]]:
    """data-chart -> the attributes of its <svg class="chart"> tag, as the browser left them."""
    charts = {}
    for tag in re.findall(r'<svg class="chart"[^>]*>', dom):
        attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', tag))
        charts[attributes["data-chart"]] = attributes
    return charts


def test_every_chart_renders_with_all_its_marks(tmp_path, report_file):
    dom = chromium(tmp_path, "--dump-dom", report_file.as_uri()).stdout
    charts = chart_tags(dom)
    assert set(charts) == ALL_CHARTS
    for name, chart in charts.items():
        assert chart.get("data-rendered") == "yes", (name, chart)
        width, height = (int(v) for v in chart["data-plot-size"].split("x"))
        assert width > 100 and height > 20, (name, chart["data-plot-size"])
        drawn, expected = int(chart["data-drawn-marks"]), int(chart["data-expected-marks"])
        assert drawn == expected > 0, name
        if name in WITH_LINES:
            assert int(chart["data-drawn-lines"]) > 0, name
    summary = re.search(r'<p id="render-check"[^>]*data-charts-total="(\d+)" data-charts-rendered="(\d+)">([^<]*)', dom)
    assert summary is not None
    assert summary.group(1) == summary.group(2) == str(len(ALL_CHARTS))
    total = len(ALL_CHARTS)
    assert summary.group(3) == f"chart check: {total} of {total} charts rendered with all their marks"


def test_screenshot_is_a_non_blank_png_of_the_window(tmp_path, report_file):
    png = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={png}", f"--window-size={WINDOW[0]},{WINDOW[1]}", report_file.as_uri())
    width, height, pixels = read_png(png)
    assert (width, height) == WINDOW
    colors = count_colors(pixels)
    assert len(colors) > 200  # text antialiasing, charts and badges: a blank page has one or two colours
    white = colors.get((255, 255, 255), 0) + colors.get((247, 248, 250), 0)  # section and page background
    assert white < 0.97 * width * height
    # The header's dark band and the first series' blue (#1f77b4) are painted.
    assert colors.get((29, 35, 48), 0) > 1000
    assert near(colors, (31, 119, 180)) > 100


# --- a small PNG reader (8-bit RGB/RGBA, not interlaced: what Chromium writes) -------------------------


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, header, compressed = 8, None, []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            compressed.append(body)
        position += 12 + length
    width, height, depth, color_type, _, _, interlace = header
    assert depth == 8 and color_type in (2, 6) and interlace == 0, header
    channels = 3 if color_type == 2 else 4
    return width, height, unfilter(zlib.decompress(b"".join(compressed)), width, height, channels)


def unfilter(raw: bytes, width: int, height: int, channels: int) -> list[bytes]:
    """Undo PNG's per-row filters; rows as RGB bytes (alpha dropped)."""
    stride = width * channels
    assert len(raw) == (stride + 1) * height, "image data does not match its header"
    previous = bytearray(stride)
    rows = []
    for index in range(height):
        start = index * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter_line(kind, line, previous, channels)
        rows.append(bytes(line) if channels == 3 else bytes(b for i, b in enumerate(line) if i % 4 != 3))
        previous = line
    return rows


def _unfilter_line(kind: int, line: bytearray, previous: bytearray, step: int) -> None:
    if kind == 0:
        return
    for i in range(len(line)):
        left = line[i - step] if i >= step else 0
        up = previous[i]
        if kind == 1:
            line[i] = (line[i] + left) & 255
        elif kind == 2:
            line[i] = (line[i] + up) & 255
        elif kind == 3:
            line[i] = (line[i] + (left + up) // 2) & 255
        elif kind == 4:
            upper_left = previous[i - step] if i >= step else 0
            guess = left + up - upper_left
            distances = (abs(guess - left), abs(guess - up), abs(guess - upper_left))
            nearest = (
                left
                if distances[0] <= distances[1] and distances[0] <= distances[2]
                else (up if distances[1] <= distances[2] else upper_left)
            )
            line[i] = (line[i] + nearest) & 255
        else:
            raise AssertionError(f"unknown PNG filter {kind}")


def count_colors(rows: list[bytes]) -> dict[tuple[int, int, int], int]:
    counts: dict[tuple[int, int, int], int] = {}
    for row in rows:
        for i in range(0, len(row), 3):
            pixel = (row[i], row[i + 1], row[i + 2])
            counts[pixel] = counts.get(pixel, 0) + 1
    return counts


def near(colors: dict, target: tuple[int, int, int], tolerance: int = 6) -> int:
    return sum(n for c, n in colors.items() if all(abs(a - b) <= tolerance for a, b in zip(c, target)))
