"""Where hwfit keeps its on-disk caches (trained built-ins, exported and converted models)."""

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """Return (and create) a folder under the cache root: $HWFIT_CACHE or ~/.cache/hwfit."""
    root = Path(os.environ.get("HWFIT_CACHE", Path.home() / ".cache" / "hwfit"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
