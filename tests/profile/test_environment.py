"""capture_environment() on this machine: real versions, never the raw hostname, fast, and storable."""

import importlib.metadata
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import hwfit
from hwfit.profile.environment import capture_environment
from hwfit.store import Environment, open_store


def test_fields_match_this_interpreter_and_packages():
    environment = capture_environment()
    assert environment.python == sys.version.split()[0]
    assert environment.hwfit_version == hwfit.__version__
    assert environment.numpy == importlib.metadata.version("numpy")
    assert environment.onnxruntime is not None
    for name in ("torch", "openvino"):
        try:
            expected = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            expected = None
        assert getattr(environment, name) == expected
    assert isinstance(environment.gpu_names, tuple)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="CPU model comes from /proc/cpuinfo on Linux")
def test_cpu_model_is_known_on_linux():
    assert capture_environment().cpu_model


def test_git_commit_is_this_checkouts_head():
    source_root = Path(hwfit.__file__).resolve().parent.parent
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source_root, capture_output=True, text=True)
    environment = capture_environment()
    if head.returncode != 0:
        assert environment.hwfit_commit is None
    else:
        assert environment.hwfit_commit == head.stdout.strip()
        assert isinstance(environment.extra["hwfit_dirty"], bool)


def test_hostname_is_hashed_never_stored(tmp_path):
    hostname = socket.gethostname()
    environment = capture_environment()
    assert len(environment.hostname_hash) == 12 and environment.hostname_hash != hostname[:12]
    db_path = tmp_path / "results.db"
    with open_store(db_path) as store:
        run = store.start_run("m", "s", "h", "k", {}, environment)
        assert store.get_run(run.id).environment == environment
    if len(hostname) >= 4:  # a one-letter hostname would match by chance
        assert hostname.encode() not in db_path.read_bytes()
        assert hostname not in json.dumps(environment.to_dict())


def test_torch_is_not_imported_for_its_version():
    code = (
        "import sys; from hwfit.profile.environment import capture_environment; "
        "loaded = 'torch' in sys.modules; capture_environment(); print(loaded, 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    before, after = result.stdout.split()
    assert after == before  # capture_environment itself imported nothing new


def test_stable_and_storable():
    # "fast" is not timed here (that depends on the machine): the test above checks the property
    # that makes it fast, that capture_environment imports nothing heavy.
    first = capture_environment()
    assert capture_environment().key() == first.key()
    assert Environment.from_dict(first.to_dict()) == first


def test_never_raises_when_probes_fail(monkeypatch):
    import hwfit.profile.environment as module

    def broken(*args, **kwargs):
        raise RuntimeError("probe exploded")

    monkeypatch.setattr(module, "discover_cpu", broken)
    monkeypatch.setattr(module, "discover_gpus", broken)
    monkeypatch.setattr(module.subprocess, "run", broken)
    environment = capture_environment()
    assert environment.cpu_model is None and environment.gpu_names == () and environment.hwfit_commit is None


def test_cores_governor_and_container_limits_are_recorded():
    """The fields a regression check needs to tell other hardware from other code."""
    extra = capture_environment().extra
    for name in ("cpu_count", "usable_cores", "cpu_governor", "container_cpu_limit", "container_memory_limit_bytes"):
        assert name in extra
    assert extra["cpu_count"] >= extra["usable_cores"] >= 1
