"""An optional result cache: outputs keyed by a hash of the inputs, bounded in bytes, least recently
used evicted first. Off by default: only worth it where identical requests repeat."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from hwfit.core import HwfitError


def inputs_key(model: str, version: str, inputs: Mapping[str, np.ndarray]) -> bytes:
    """A digest of the model and every input's name, dtype, shape and bytes."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{model}\0{version}\0".encode())
    for name in sorted(inputs):
        array = np.asarray(inputs[name])
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        if array.dtype == object:
            for item in array.reshape(-1):
                data = item if isinstance(item, bytes) else str(item).encode()
                digest.update(len(data).to_bytes(8, "little") + data)
        else:
            digest.update(np.ascontiguousarray(array).data)
    return digest.digest()


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


class ResultCache:
    """LRU of {key: outputs}; never holds more than `max_bytes` of output data."""

    def __init__(self, max_bytes: int):
        if max_bytes <= 0:
            raise HwfitError(f"result cache size must be > 0 bytes, got {max_bytes}; leave the cache off instead")
        self.max_bytes = max_bytes
        self.bytes = 0
        self.stats = CacheStats()
        self._entries: OrderedDict[bytes, tuple[dict[str, np.ndarray], int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> dict[str, np.ndarray] | None:
        entry = self._entries.get(key)
        if entry is None:
            self.stats.misses += 1
            return None
        self._entries.move_to_end(key)
        self.stats.hits += 1
        return dict(entry[0])

    def put(self, key: bytes, outputs: Mapping[str, np.ndarray]) -> bool:
        """Keep private read-only copies; False when the outputs alone exceed the cache."""
        size = sum(np.asarray(array).nbytes for array in outputs.values())
        if size > self.max_bytes:
            return False
        if key in self._entries:
            self.bytes -= self._entries.pop(key)[1]
        kept = {}
        for name, array in outputs.items():
            copy = np.array(array, copy=True)
            copy.flags.writeable = False
            kept[name] = copy
        self._entries[key] = (kept, size)
        self.bytes += size
        self._evict_to_fit()
        return True

    def _evict_to_fit(self) -> None:
        while self.bytes > self.max_bytes and self._entries:
            _, (_, size) = self._entries.popitem(last=False)
            self.bytes -= size
            self.stats.evictions += 1
