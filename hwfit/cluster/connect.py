"""Ray, optional: importing it with a clear way to get it, joining a cluster, and reading its nodes'
labels (the custom resources named `node:<label>` that `ray start --resources` gives a node)."""

from __future__ import annotations

import importlib
import ipaddress
import os
import sys
from typing import Any

from hwfit.core import HwfitError

INSTALL_HINT = "pip install 'hwfit[cluster]'"
LABEL_PREFIX = "node:"
# Ray gives every node a `node:<ip>` resource and the head `node:__internal_head__`: not labels of ours.
_RAY_OWN_LABELS = ("__internal_head__",)
# Ray sets these from `num_cpus`; a point or replica sets them to its own thread count instead.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


class ClusterError(HwfitError):
    """Ray is missing, the cluster cannot be reached, or it lacks what was asked for."""


def require_ray() -> Any:
    """The `ray` module, or a ClusterError that says how to install it."""
    try:
        return importlib.import_module("ray")
    except ImportError as error:
        raise ClusterError(
            f"--ray needs Ray, which is not installed here ({error}); install it with: {INSTALL_HINT}"
        ) from None


def connect(address: str | None = "auto") -> Any:
    """Join the Ray cluster at `address` ("auto": the one `ray start` runs on this machine) once per
    process; returns the `ray` module."""
    if _is_loopback(address):
        loopback_only()
    ray = require_ray()
    if ray.is_initialized():
        return ray
    options = {"_node_ip_address": "127.0.0.1"} if _is_loopback(address) else {}
    try:
        ray.init(address=address or "auto", logging_level="ERROR", log_to_driver=False, **options)
    except ConnectionError as error:
        raise ClusterError(
            f"cannot reach a Ray cluster at {address or 'auto'!r} ({error}); start one with `ray start --head` "
            "or pass its address (HOST:6379)"
        ) from None
    return ray


def loopback_only() -> None:
    """Keep Ray on 127.0.0.1 (a cluster on one machine, as the tests and the bench start). Ray swaps a
    loopback address for the machine's default-route address, which a loopback cluster never bound,
    and then waits for ever; this switch (read when `ray` is first imported) keeps it local."""
    if "ray" not in sys.modules:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def node_labels(resources: dict[str, float]) -> list[str]:
    """The labels of a node from its resources: `node:gpu-a100` -> `gpu-a100` (Ray's own `node:<ip>` skipped)."""
    labels = []
    for name in resources:
        if not name.startswith(LABEL_PREFIX):
            continue
        label = name[len(LABEL_PREFIX) :]
        if label in _RAY_OWN_LABELS or _is_address(label):
            continue
        labels.append(label)
    return sorted(labels)


def label_resource(label: str) -> dict[str, float]:
    """The resource demand that places work on a node with `label` (a sliver, so it never limits how many)."""
    return {LABEL_PREFIX + label: 0.001}


def thread_env(threads: int) -> dict[str, str]:
    return {name: str(threads) for name in THREAD_VARIABLES}


def _is_loopback(address: str | None) -> bool:
    host = (address or "").rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
