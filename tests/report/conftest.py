"""Fixtures for the report tests: the samples module (samples.py), a fresh database holding its
measurements as run 1, and the hand-written example plan (same model hash, search.run_ids [1])."""

import importlib.util
from pathlib import Path

import pytest

from hwfit.plan import load_plan
from hwfit.store import open_store

_spec = importlib.util.spec_from_file_location("report_test_samples", Path(__file__).with_name("samples.py"))
_samples = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_samples)


@pytest.fixture
def samples():
    """The samples module: environment(), timed(), sample_points(), make_store(), EXAMPLE_PLAN, XSS."""
    return _samples


@pytest.fixture
def db_path(tmp_path) -> Path:
    return _samples.make_store(tmp_path / "results.db")


@pytest.fixture
def store(db_path):
    with open_store(db_path, create=False) as opened:
        yield opened


@pytest.fixture
def example_plan():
    return load_plan(_samples.EXAMPLE_PLAN)
