"""Converted models (quantized, fp16) cached on disk, keyed by the source's content hash and options."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from hwfit.core import cache_dir


def cache_key(source_hash: str, options: dict) -> str:
    payload = json.dumps({"source": source_hash, "options": options}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def cached_conversion(
    source_hash: str, options: dict, produce: Callable[[Path], None], suffix: str = ".onnx"
) -> tuple[Path, float, bool]:
    """Return (path, seconds spent converting, found in cache). `produce(tmp_path)` writes the file.

    The file is written under a temporary name and renamed, so an interrupted conversion never
    leaves a half-written model that a later run would trust.
    """
    target = cache_dir("converted") / f"{cache_key(source_hash, options)}{suffix}"
    if target.exists():
        return target, 0.0, True
    tmp = target.with_name(target.stem + ".partial" + suffix)
    started = time.perf_counter()
    try:
        produce(tmp)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target, time.perf_counter() - started, False
