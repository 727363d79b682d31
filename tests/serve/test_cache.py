"""The result cache: keys that tell inputs apart, LRU eviction by bytes, private read-only copies."""

import numpy as np
import pytest

from hwfit.core import HwfitError
from hwfit.serve.scheduler.cache import ResultCache, inputs_key


def outputs(value, size=100):
    return {"y": np.full(size, value, dtype=np.float32)}  # 400 bytes


@pytest.mark.timeout(10)
def test_keys_differ_by_values_dtype_shape_name_and_model():
    x = np.arange(6, dtype=np.float32)
    base = inputs_key("m", "1", {"x": x})
    assert base == inputs_key("m", "1", {"x": x.copy()})
    assert base != inputs_key("m", "1", {"x": x + 1})
    assert base != inputs_key("m", "1", {"x": x.astype(np.float64)})
    assert base != inputs_key("m", "1", {"x": x.reshape(2, 3)})
    assert base != inputs_key("m", "1", {"z": x})
    assert base != inputs_key("other", "1", {"x": x})
    assert inputs_key("m", "1", {"s": np.array([b"ab", b"c"], dtype=object)}) != inputs_key(
        "m", "1", {"s": np.array([b"a", b"bc"], dtype=object)}
    )


@pytest.mark.timeout(10)
def test_least_recently_used_entries_go_first_and_the_byte_bound_holds():
    cache = ResultCache(max_bytes=1000)
    cache.put(b"a", outputs(1))
    cache.put(b"b", outputs(2))
    assert cache.get(b"a")["y"][0] == 1  # a is now the most recent
    cache.put(b"c", outputs(3))  # 1200 bytes > 1000: the least recent (b) goes
    assert cache.get(b"b") is None and cache.get(b"a") is not None and cache.get(b"c") is not None
    assert cache.bytes == 800 and cache.stats.evictions == 1
    assert not cache.put(b"huge", outputs(4, size=1000))  # larger than the whole cache: not kept
    assert cache.stats.hits == 3 and cache.stats.misses == 1


@pytest.mark.timeout(10)
def test_entries_are_private_read_only_copies():
    cache = ResultCache(max_bytes=1000)
    original = outputs(1)
    cache.put(b"a", original)
    original["y"][:] = 9  # the caller reuses its buffer
    kept = cache.get(b"a")["y"]
    assert kept[0] == 1
    with pytest.raises(ValueError):
        kept[0] = 5


@pytest.mark.timeout(10)
def test_a_cache_of_no_bytes_is_refused_with_the_fix():
    with pytest.raises(HwfitError, match="leave the cache off"):
        ResultCache(0)
