"""The window: it ends at its length, when COMMAND exits, when every named process is gone; bad
options are refused with what was expected; the CLI prints a table, JSON and a page."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hwfit.audit import AuditError, AuditOptions, WatchSpec, run_audit, watch

BUSY_1S = "import time\nt = time.time()\nwhile time.time() - t < 1.0: pass"


def _hwfit(*args: str) -> list[str]:
    return [sys.executable, "-c", "from hwfit.cli import main; main()", *args]


@pytest.mark.timeout(60)
def test_a_command_is_audited_for_its_lifetime_and_its_cpu_time_counted():
    result = run_audit(WatchSpec(seconds=None, devices=("cpu",), command=(sys.executable, "-c", BUSY_1S)), None)
    obs = result.observation
    assert obs.ended_because == "the command exited (code 0)" and obs.command_exit == 0
    assert 0.9 < obs.window_s < 20
    assert obs.process_cpu_s() > 0.3  # a busy loop of 1 s (less on a loaded machine, never nothing)
    (waterfall,) = result.waterfalls
    assert waterfall.step("other processes") is not None and waterfall.useful is None
    assert waterfall.step("busy, useful work not measured").share > 0


@pytest.mark.timeout(60)
def test_a_named_process_that_exits_ends_the_window_with_what_it_has():
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.0)"])
    try:
        obs = watch(WatchSpec(seconds=None, devices=("cpu",), pids=(sleeper.pid,), interval_s=0.2))
    finally:
        sleeper.wait()
    assert obs.ended_because == "every audited process exited"
    assert obs.window_s < 15 and obs.processes[0].exited


@pytest.mark.parametrize(
    "spec, message",
    [
        (WatchSpec(seconds=None, devices=("cpu",)), "an audit needs a window"),
        (WatchSpec(seconds=-1.0, devices=("cpu",)), "--seconds must be > 0"),
        (WatchSpec(seconds=1.0, devices=("cpu",), pids=(2**22 + 12345,)), "no process"),
    ],
)
def test_an_audit_without_a_window_or_with_a_missing_process_is_refused(spec, message):
    with pytest.raises(AuditError, match=message):
        run_audit(spec, None)


def test_a_price_that_is_not_positive_is_refused():
    with pytest.raises(AuditError, match="--price must be > 0"):
        run_audit(WatchSpec(seconds=1.0, devices=("cpu",)), None, AuditOptions(price_usd_per_hour=0.0))


@pytest.mark.timeout(120)
def test_the_cli_prints_the_waterfall_json_and_a_page(tmp_path):
    page = tmp_path / "audit.html"
    done = subprocess.run(
        _hwfit("audit", "--seconds", "1", "-d", "cpu", "--price", "0.5", "--json", "--report", str(page)),
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    steps = data["waterfalls"][0]["steps"]
    assert steps[0]["name"] == "purchased" and steps[0]["usd"] == pytest.approx(0.5 / 3600 * data["window_s"], rel=0.01)
    assert sum(s["flops"] for s in steps[1:]) == pytest.approx(steps[0]["flops"])
    assert "where the purchased fp32 FLOPs went" in page.read_text()
    table = subprocess.run(_hwfit("audit", "--seconds", "1", "-d", "cpu"), capture_output=True, text=True, timeout=100)
    assert table.returncode == 0 and "- idle" in table.stdout and "[1] fp32 peak" in table.stdout
    bad = subprocess.run(_hwfit("audit", "--seconds", "0"), capture_output=True, text=True, timeout=100)
    assert bad.returncode == 2 and "--seconds must be > 0" in bad.stderr


@pytest.mark.timeout(120)
def test_a_pytorch_command_has_its_flops_counted_as_the_useful_work(tmp_path):
    script = tmp_path / "matmuls.py"
    script.write_text("import torch\na = torch.ones(64, 64)\nfor _ in range(10):\n    a = a @ a / 64\n")
    result = run_audit(
        WatchSpec(seconds=None, devices=("cpu",), command=(sys.executable, str(script)), count_flops=True), None
    )
    assert result.observation.command_exit == 0
    assert result.observation.command_flops == 10 * 2 * 64**3  # ten 64x64 matmuls
    useful = result.waterfalls[0].useful
    assert useful is not None and useful.flops == pytest.approx(10 * 2 * 64**3)
    assert "torch.utils.flop_counter" in useful.source
    with pytest.raises(AuditError, match="--count-flops runs `python SCRIPT.py"):
        run_audit(WatchSpec(seconds=None, devices=("cpu",), command=("sleep", "1"), count_flops=True), None)
