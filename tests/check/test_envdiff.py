"""The environment diff: which fields differ, and which make a stored comparison unsound."""

from hwfit.check import diff_environments, unsound_changes
from hwfit.store import Environment


def _environment(**changes):
    values = dict(
        hwfit_version="0.1.0",
        hwfit_commit="abc1234def",
        python="3.11.7",
        numpy="2.0.0",
        onnxruntime="1.18.0",
        torch="2.13.0",
        openvino=None,
        cuda=None,
        nvidia_driver=None,
        cpu_model="Test CPU @ 2.0GHz",
        gpu_names=(),
        hostname_hash="0123456789ab",
        extra={"cpu_count": 2, "usable_cores": 2, "cpu_governor": "performance", "machine": "x86_64"},
    )
    values.update(changes)
    return Environment(**values)


def test_the_same_environment_and_model_differ_in_nothing():
    assert diff_environments(_environment(), _environment(), "m" * 64, "m" * 64) == []


def test_library_versions_and_the_model_explain_a_change_without_making_it_unsound():
    changes = diff_environments(_environment(), _environment(onnxruntime="1.19.2"), "a" * 64, "b" * 64)
    assert [(c.field, c.baseline, c.candidate) for c in changes] == [
        ("model", "a" * 12, "b" * 12),
        ("onnxruntime", "1.18.0", "1.19.2"),
    ]
    assert unsound_changes(changes) == []


def test_other_hardware_is_unsound():
    candidate = _environment(
        cpu_model="Other CPU",
        gpu_names=("NVIDIA H100",),
        extra={"cpu_count": 4, "usable_cores": 4, "cpu_governor": "powersave", "machine": "x86_64"},
    )
    changes = diff_environments(_environment(), candidate, "m", "m")
    unsound = {c.field for c in unsound_changes(changes)}
    assert unsound == {"cpu_model", "gpu_names", "cpu_count", "usable_cores", "cpu_governor"}
    gpus = next(c for c in changes if c.field == "gpu_names")
    assert (gpus.baseline, gpus.candidate) == ("none", "NVIDIA H100")


def test_a_field_an_older_run_did_not_record_is_listed_but_not_unsound():
    older = _environment(extra={})
    changes = diff_environments(older, _environment(), "m", "m")
    assert {c.field for c in changes} == {"cpu_count", "usable_cores", "cpu_governor", "machine"}
    assert unsound_changes(changes) == []


def test_hwfit_commit_is_part_of_the_hwfit_label():
    changes = diff_environments(_environment(), _environment(hwfit_commit="fff0000aaa"), "m", "m")
    assert [(c.field, c.baseline, c.candidate) for c in changes] == [("hwfit", "0.1.0 (abc1234)", "0.1.0 (fff0000)")]
