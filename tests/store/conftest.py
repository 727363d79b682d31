"""Fixtures for the store tests: sample records (from samples.py) and a fresh database per test."""

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("store_test_samples", Path(__file__).with_name("samples.py"))
samples = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(samples)

WRITER_SCRIPT = Path(__file__).with_name("writer.py")


@pytest.fixture
def sample():
    """The samples module: environment(), full_measurement(), failed_measurement()."""
    return samples


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "results.db"


@pytest.fixture
def store(db_path):
    from hwfit.store import open_store

    with open_store(db_path) as opened:
        yield opened


@pytest.fixture
def writer_script():
    return WRITER_SCRIPT
