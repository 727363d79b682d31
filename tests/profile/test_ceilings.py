"""The machine's ceilings are measured once and kept in the hwfit cache: reused by later runs, measured
again when asked (`fresh`), when old, for a stricter request, or where the last try failed."""

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from hwfit.profile import JobOutcome, capture_environment
from hwfit.profile import ceilings as module

FOUND = {"matmul_flops": {"fp32": 1.0e11}, "mem_bandwidth": 2.0e10}


@pytest.fixture
def measured(monkeypatch, tmp_path):
    """Each device measured (in place of the 25 s job): `.asked` lists the (device, quick) measured,
    `.outcomes` sets a device's outcome (else FOUND)."""
    monkeypatch.setenv("HWFIT_CACHE", str(tmp_path))
    jobs = SimpleNamespace(asked=[], outcomes={})

    def fake_run_isolated(job, args, timeout_s):
        assert job is module.ceilings_job
        jobs.asked.append(args)
        return jobs.outcomes.get(args[0], JobOutcome(True, dict(FOUND)))

    monkeypatch.setattr(module, "run_isolated", fake_run_isolated)
    return jobs


@pytest.fixture(scope="module")
def environment():
    return capture_environment()


def test_a_second_run_reuses_the_ceilings_and_fresh_measures_them_again(measured, environment):
    first = module.cached_ceilings({"cpu"}, 60, environment=environment)
    assert first["cpu"]["matmul_flops"] == FOUND["matmul_flops"] and first["cpu"]["quick"] is False
    assert datetime.fromisoformat(first["cpu"]["measured_at"]) <= datetime.now(timezone.utc)

    assert module.cached_ceilings({"cpu"}, 60, environment=environment) == first
    assert measured.asked == [("cpu", False)]

    module.cached_ceilings({"cpu"}, 60, fresh=True, environment=environment)
    assert measured.asked == [("cpu", False), ("cpu", False)]


def test_ceilings_older_than_the_limit_are_measured_again(measured, environment, monkeypatch):
    module.cached_ceilings({"cpu"}, 60, environment=environment)
    later = datetime.now(timezone.utc) + timedelta(seconds=module.MAX_AGE_S + 60)
    monkeypatch.setattr(module, "_now", lambda: later)
    again = module.cached_ceilings({"cpu"}, 60, environment=environment)
    assert len(measured.asked) == 2
    assert datetime.fromisoformat(again["cpu"]["measured_at"]) == later.replace(microsecond=0)


def test_a_full_measurement_serves_a_quick_request_not_the_other_way_round(measured, environment):
    module.cached_ceilings({"cpu"}, 60, quick=True, environment=environment)
    module.cached_ceilings({"cpu"}, 60, environment=environment)  # quick ones do not serve a full request
    module.cached_ceilings({"cpu"}, 60, quick=True, environment=environment)  # the full one serves this
    assert measured.asked == [("cpu", True), ("cpu", False)]


def test_a_failed_measurement_is_reported_and_not_kept(measured, environment):
    measured.outcomes["cuda:0"] = JobOutcome(False, reason="CUDA error: no device")
    found = module.cached_ceilings({"cpu", "cuda:0"}, 60, environment=environment)
    assert found["cuda:0"] == {"error": "CUDA error: no device"} and "matmul_flops" in found["cpu"]

    del measured.outcomes["cuda:0"]
    found = module.cached_ceilings({"cpu", "cuda:0"}, 60, environment=environment)
    assert measured.asked == [("cpu", False), ("cuda:0", False), ("cuda:0", False)]  # cpu reused, the GPU tried again
    assert "matmul_flops" in found["cuda:0"]


def test_another_machine_or_torch_has_its_own_ceilings(measured, environment):
    module.cached_ceilings({"cpu"}, 60, environment=environment)
    module.cached_ceilings({"cpu"}, 60, environment=replace(environment, torch="9.9.9"))
    module.cached_ceilings({"cpu"}, 60, environment=replace(environment, hostname_hash="0" * 12))
    assert len(measured.asked) == 3


def test_a_broken_cache_file_is_measured_again(measured, environment):
    path = module._cache_path(environment)
    path.write_text("{not json")
    assert "matmul_flops" in module.cached_ceilings({"cpu"}, 60, environment=environment)["cpu"]
    assert measured.asked == [("cpu", False)]
