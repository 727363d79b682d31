"""The measurement side of planning: stored points of this machine, and the run a planning session
opens on its first measure and closes as complete, interrupted (Ctrl-C) or failed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hwfit.core import HwfitError, Variant, usable_threads
from hwfit.hardware import device_names
from hwfit.profile import PlanningSession, stored_points
from hwfit.profile.environment import capture_environment
from hwfit.store import open_store
from tests.plan._points import point


class Quiet:
    """A sweep observer that shows nothing."""

    def planned(self, total_points): ...
    def stage(self, text): ...
    def point_started(self, variant): ...
    def point_progress(self, variant, message): ...
    def point_finished(self, variant, measurement, reused): ...
    def family_finished(self, family, skipped_points): ...


def _run(store, model, points, environment=None):
    run = store.start_run(
        model.name, model.source, model.content_hash, "test", {}, environment or capture_environment()
    )
    for measured in points:
        store.record(run.id, measured)
    store.finish_run(run.id, "complete")
    return run.id


def test_stored_points_are_this_machines_newest_and_default_threads_mean_every_core(tmp_path, cnn):
    every_core = usable_threads()
    with open_store(tmp_path / "r.db") as store:
        older = _run(store, cnn, [point("ort", "fp32", 1, 1.0, threads=every_core), point("ort", "fp32", 2, 1.5)])
        newer = _run(store, cnn, [point("ort", "fp32", 1, 0.9, threads=None)])
        elsewhere = replace(capture_environment(), hostname_hash="0" * 12)
        _run(store, cnn, [point("torch", "fp32", 1, 5.0)], environment=elsewhere)
        points, run_ids = stored_points(store, cnn)
    by_key = {m.variant_key: m for m in points}
    b1 = Variant("ort", "cpu", "fp32", 1, every_core).key
    assert sorted(by_key) == sorted([b1, Variant("ort", "cpu", "fp32", 2, 2).key])
    assert by_key[b1].latency.mean_ms == 0.9  # the newer run's point, read as one on every core
    assert run_ids == [newer, older]


def test_a_session_that_never_measures_opens_no_run(tmp_path, cnn):
    with open_store(tmp_path / "r.db") as store:
        with PlanningSession(cnn, ["cpu", "cuda:7"], store, Quiet(), point_seconds=0.3) as source:
            assert source.devices == [d for d in ("cpu", "cuda:7") if d in device_names()]  # only those here
            assert source.variants and all(v.device in source.devices for v in source.variants)
            assert source.stored_points == [] and source.run_ids == []
        assert store.list_runs() == []


@pytest.mark.timeout(300)
def test_ctrl_c_closes_the_measuring_run_as_interrupted_with_its_points_kept(tmp_path, cnn):
    with open_store(tmp_path / "r.db") as store:
        source = PlanningSession(
            cnn,
            ["cpu"],
            store,
            Quiet(),
            point_seconds=0.3,
            warmup_s=0.2,
            args={"command": "plan"},
            interrupted_note="stopped by the test",
        )
        wanted = Variant("ort", "cpu", "fp32", 1, 1)
        with pytest.raises(KeyboardInterrupt), source:
            measured = source.measure([wanted])
            raise KeyboardInterrupt
        assert measured[0].variant_key == wanted.key and measured[0].status in ("ok", "unstable")
        (run,) = store.list_runs()
        assert source.run_ids == [run.id]
        assert (run.status, run.note, run.args["command"]) == ("interrupted", "stopped by the test", "plan")
        assert [m.variant_key for m in store.measurements(run.id)] == [wanted.key]
        with pytest.raises(HwfitError, match="closed"):
            source.measure([wanted])
