"""Dataclass round trips and environment keys, without a database."""

import json

import pytest

from hwfit.store import Environment, Measurement, StoreError


def test_measurement_dict_round_trip_is_exact(sample):
    original = sample.full_measurement()
    again = Measurement.from_dict(json.loads(json.dumps(original.to_dict())))
    assert json.dumps(again.to_dict()) == json.dumps(original.to_dict())
    assert type(again.latency.count) is int and type(again.peak_rss_delta_bytes) is int


def test_unknown_measurement_field_is_named(sample):
    data = sample.full_measurement().to_dict()
    data["joules_per_token"] = 1.0
    with pytest.raises(StoreError, match="joules_per_token"):
        Measurement.from_dict(data)


def test_environment_key_is_content_hash(sample):
    first, same = sample.environment(), sample.environment()
    assert first.key() == same.key() and hash(first) == hash(same)
    assert sample.environment(torch="2.3.0").key() != first.key()
    assert sample.environment(extra={"os": "Darwin"}).key() != first.key()
    assert Environment.from_dict(first.to_dict()) == first
