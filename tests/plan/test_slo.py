"""SLO files: a valid one loads with defaults; each kind of mistake names the field at fault."""

import textwrap

import pytest

from hwfit.core import HwfitError
from hwfit.plan import Slo, SloError, load_slo

VALID = """
latency_p99_ms: 20
throughput_rps: 100
objective: cost
devices:
  cpu: {count: 1}
  "cuda:0": {count: 2, price_per_hour: 2.5}
"""


def write(tmp_path, text: str):
    path = tmp_path / "slo.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def load_error(tmp_path, text: str) -> str:
    with pytest.raises(SloError) as caught:
        load_slo(write(tmp_path, text))
    assert isinstance(caught.value, HwfitError)
    message = str(caught.value)
    assert str(tmp_path / "slo.yaml") in message  # every error names the file
    return message


def test_valid_file_loads_with_defaults(tmp_path):
    slo = load_slo(write(tmp_path, VALID))
    assert isinstance(slo, Slo)
    assert slo.latency_p99_ms == 20 and slo.throughput_rps == 100
    assert slo.headroom == 0.7 and slo.price_per_kwh == 0.15
    assert slo.peak_rps is None and slo.max_accuracy_loss is None
    assert slo.devices["cuda:0"].count == 2 and slo.devices["cuda:0"].price_per_hour == 2.5
    assert slo.devices["cpu"].price_per_hour is None


def test_missing_required_field(tmp_path):
    message = load_error(tmp_path, VALID.replace("latency_p99_ms: 20\n", ""))
    assert "latency_p99_ms" in message and "missing" in message and "> 0" in message


def test_wrong_type(tmp_path):
    message = load_error(tmp_path, VALID.replace("throughput_rps: 100", "throughput_rps: lots"))
    assert "throughput_rps" in message and "'lots'" in message and "> 0" in message


def test_out_of_range(tmp_path):
    message = load_error(tmp_path, VALID + "headroom: 1.5\n")
    assert "headroom" in message and "(0, 1]" in message


def test_negative_latency_is_out_of_range(tmp_path):
    message = load_error(tmp_path, VALID.replace("latency_p99_ms: 20", "latency_p99_ms: -3"))
    assert "latency_p99_ms" in message and "> 0" in message


def test_device_count_out_of_range(tmp_path):
    message = load_error(tmp_path, VALID.replace("cpu: {count: 1}", "cpu: {count: 0}"))
    assert "devices.cpu.count" in message and ">= 1" in message


def test_unknown_field_lists_allowed_ones(tmp_path):
    message = load_error(tmp_path, VALID + "p99: 20\n")
    assert "p99: unknown field" in message
    for allowed in ("latency_p99_ms", "throughput_rps", "objective", "headroom", "devices"):
        assert allowed in message


def test_unknown_device_field_lists_allowed_ones(tmp_path):
    message = load_error(tmp_path, VALID.replace("cpu: {count: 1}", "cpu: {count: 1, cost: 3}"))
    assert "devices.cpu.cost: unknown field" in message and "count, price_per_hour" in message


def test_bad_objective_lists_choices(tmp_path):
    message = load_error(tmp_path, VALID.replace("objective: cost", "objective: speed"))
    assert "objective" in message and "'speed'" in message
    assert "cost, energy, latency, throughput" in message


def test_peak_below_sustained(tmp_path):
    message = load_error(tmp_path, VALID + "peak_rps: 50\n")
    assert "peak_rps" in message and "throughput_rps" in message


def test_device_not_a_mapping(tmp_path):
    message = load_error(tmp_path, VALID.replace("cpu: {count: 1}", "cpu: 4"))
    assert "devices.cpu" in message and "count" in message


def test_file_not_a_mapping(tmp_path):
    message = load_error(tmp_path, "- 20\n- 100\n")
    assert "mapping" in message and "list" in message and "latency_p99_ms" in message


def test_not_yaml(tmp_path):
    message = load_error(tmp_path, "latency_p99_ms: [20\nobjective: cost\n")
    assert "not valid YAML" in message


def test_missing_file(tmp_path):
    with pytest.raises(SloError) as caught:
        load_slo(tmp_path / "absent.yaml")
    assert "absent.yaml" in str(caught.value)


def test_boolean_is_not_a_number(tmp_path):
    # YAML reads `yes` as true; pydantic alone would take it as 1.0
    message = load_error(tmp_path, VALID.replace("latency_p99_ms: 20", "latency_p99_ms: yes"))
    assert "latency_p99_ms" in message and "boolean" in message


def test_a_three_line_slo_without_devices_loads_and_takes_the_machines_devices(tmp_path):
    slo = load_slo(write(tmp_path, "latency_p99_ms: 50\nthroughput_rps: 100\nobjective: cost\n"))
    assert slo.devices is None and not slo.names_devices
    filled = slo.with_devices(["cpu", "cuda:0"])
    assert list(filled.devices) == ["cpu", "cuda:0"] and all(a.count == 1 for a in filled.devices.values())
    assert filled.latency_p99_ms == 50 and slo.devices is None  # a copy; the file's SLO is unchanged
    named = load_slo(write(tmp_path, VALID))
    assert named.with_devices(["cuda:3"]) is named  # devices the file lists are kept as they are


def test_an_empty_devices_mapping_is_still_refused(tmp_path):
    message = load_error(tmp_path, "latency_p99_ms: 50\nthroughput_rps: 100\nobjective: cost\ndevices: {}\n")
    assert "devices" in message
