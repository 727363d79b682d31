"""Tensors between the server and its worker processes: a shared-memory arena per direction.

Why shared memory rather than pickling arrays through the pipe: a pipe moves every byte four
times (pickle, kernel write, kernel read, unpickle) in 64 KiB chunks that make the two processes
take turns; an arena moves it once (the server's write; the worker reads a view in place). The
pipe then carries only a small control message. Arrays that cannot live in raw memory (object
dtype, KServe BYTES) and outputs larger than the arena go through the pipe instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

ALIGN_BYTES = 64  # each tensor starts on a cache line


@dataclass(frozen=True)
class TensorSlot:
    """Where one tensor lies in an arena."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int


Layout = tuple[TensorSlot, ...]


def _aligned(size: int) -> int:
    return (size + ALIGN_BYTES - 1) // ALIGN_BYTES * ALIGN_BYTES


def bytes_needed(arrays: Mapping[str, np.ndarray]) -> int:
    return sum(_aligned(array.nbytes) for array in arrays.values())


def fits_raw_memory(arrays: Mapping[str, np.ndarray]) -> bool:
    """Object arrays (strings, BYTES) hold pointers, not data: they cannot be shared this way."""
    return all(array.dtype != object for array in arrays.values())


def write_tensors(buffer: memoryview, arrays: Mapping[str, np.ndarray]) -> Layout | None:
    """Copy `arrays` into `buffer`; None when they do not fit or cannot be shared (send them inline)."""
    if not fits_raw_memory(arrays) or bytes_needed(arrays) > len(buffer):
        return None
    slots = []
    offset = 0
    for name, array in arrays.items():
        target = np.ndarray(array.shape, dtype=array.dtype, buffer=buffer, offset=offset)
        np.copyto(target, array, casting="no")
        slots.append(TensorSlot(name, array.dtype.str, tuple(array.shape), offset))
        offset += _aligned(array.nbytes)
    return tuple(slots)


def read_tensors(buffer: memoryview, layout: Layout, copy: bool) -> dict[str, np.ndarray]:
    """The tensors of `layout`: views into `buffer` (copy=False) or private copies."""
    arrays = {}
    for slot in layout:
        view = np.ndarray(slot.shape, dtype=np.dtype(slot.dtype), buffer=buffer, offset=slot.offset)
        arrays[slot.name] = view.copy() if copy else view
    return arrays


class Arena:
    """A shared-memory segment the server owns: created, grown and unlinked by the server only."""

    def __init__(self, size_bytes: int):
        self._segment = shared_memory.SharedMemory(create=True, size=max(ALIGN_BYTES, _aligned(size_bytes)))

    @property
    def name(self) -> str:
        return self._segment.name

    @property
    def size(self) -> int:
        return self._segment.size

    @property
    def buffer(self) -> memoryview:
        return self._segment.buf

    def close(self) -> None:
        """Release and unlink; views still held elsewhere keep the mapping alive until dropped."""
        try:
            self._segment.close()
        except BufferError:
            pass  # a view is still alive; the mapping goes when it does
        try:
            self._segment.unlink()
        except FileNotFoundError:
            pass


class AttachedArena:
    """The worker's side of an arena: attached by name, never unlinked (the server owns it)."""

    def __init__(self, name: str):
        self.name = name
        # Attaching registers the name with the resource tracker the worker shares with the server
        # (spawn hands it down), where the server's registration already is: nothing to undo here.
        self._segment = shared_memory.SharedMemory(name=name)

    @property
    def buffer(self) -> memoryview:
        return self._segment.buf

    def close(self) -> None:
        try:
            self._segment.close()
        except BufferError:
            pass
