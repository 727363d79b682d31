"""The GPM path on a real GPU: a deliberately wasteful workload (batch-1 fp32 matmuls, launch-bound)
and a tuned one (large bf16 matmuls) run as the audited COMMAND; the waterfall must tell them apart —
the tuned one's SM activity (GPM, measured) a larger share of its busy time. Skipped without a GPU;
where GPM is not supported (before Hopper) the step must say so instead of guessing."""

from __future__ import annotations

import sys

import pytest

from hwfit.audit import AuditOptions, WatchSpec, run_audit
from hwfit.telemetry import gpm_support

pytestmark = pytest.mark.gpu

WASTEFUL = """
import time, torch
a = torch.randn(1, 256, device="cuda"); w = torch.randn(256, 256, device="cuda")
t = time.time()
while time.time() - t < 4.0:
    a = torch.tanh(a @ w)
torch.cuda.synchronize()
"""
TUNED = """
import time, torch
a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
w = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
t = time.time()
while time.time() - t < 4.0:
    for _ in range(10):
        c = a @ w
    torch.cuda.synchronize()
"""


def _audit(script: str, precision: str):
    spec = WatchSpec(seconds=None, devices=("cuda:0",), command=(sys.executable, "-c", script), interval_s=0.2)
    return run_audit(spec, None, AuditOptions(precision=precision))


def _computing_share_of_busy(result) -> float:
    waterfall = result.waterfalls[0]
    busy = 1.0 - waterfall.step("idle").share
    not_computing = waterfall.step("busy but not computing")
    assert not_computing is not None, waterfall.notes
    return (busy - not_computing.share) / busy


@pytest.mark.timeout(300)
def test_the_waterfall_tells_a_wasteful_workload_from_a_tuned_one(torch_cuda):
    supported, reason = gpm_support(0)
    wasteful = _audit(WASTEFUL, "fp32")
    tuned = _audit(TUNED, "bf16")
    for result in (wasteful, tuned):
        waterfall = result.waterfalls[0]
        assert sum(s.flops for s in waterfall.losses) == pytest.approx(waterfall.purchased.flops)
    if not supported:
        assert any("not measured on this device" in note for note in wasteful.waterfalls[0].notes), reason
        pytest.skip(f"GPM not supported here: {reason}")
    assert _computing_share_of_busy(tuned) > 2 * _computing_share_of_busy(wasteful)
    assert tuned.waterfalls[0].purchased.flops > wasteful.waterfalls[0].purchased.flops  # bf16 peak > fp32 peak
