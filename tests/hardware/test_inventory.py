"""The whole-machine inventory and its stable JSON schema; peak lookups used for MFU."""

import json

import pytest

from hwfit.hardware import (
    SCHEMA,
    UnknownDevice,
    cpu_peak_flops,
    device_names,
    discover,
    discover_cpu,
    discover_gpus,
    peak_flops,
)


def test_to_dict_is_json_with_the_documented_keys():
    data = json.loads(json.dumps(discover().to_dict()))
    assert data["schema"] == SCHEMA == "hwfit.devices/1"
    assert set(data) == {"schema", "host", "cpu", "gpus", "gpu_reason", "runtimes", "peaks"}
    assert set(data["runtimes"]) == {"onnxruntime", "openvino", "torch"}
    assert data["cpu"]["physical_cores"] >= 1
    if not data["gpus"]:
        assert data["gpu_reason"]
    for figures in data["peaks"].values():
        for figure in figures.values():
            assert set(figure) == {"value", "unit", "how", "source"}


def test_device_names_start_with_cpu():
    names = device_names()
    assert names[0] == "cpu"
    gpus, _ = discover_gpus()
    assert len(names) <= 1 + len(gpus)
    assert all(name.startswith("cuda:") for name in names[1:])


def test_peak_flops_for_cpu_matches_the_computed_peak():
    expected = cpu_peak_flops(discover_cpu()).get("fp32")
    assert peak_flops("cpu", "fp32") == expected
    assert peak_flops("cpu", "fp64") is None


def test_peak_flops_rejects_bad_device_names():
    with pytest.raises(UnknownDevice, match="expected 'cpu' or 'cuda:N'"):
        peak_flops("gpu", "fp32")
    if len(device_names()) == 1:
        with pytest.raises(UnknownDevice, match="cuda:0"):
            peak_flops("cuda:0", "fp32")
