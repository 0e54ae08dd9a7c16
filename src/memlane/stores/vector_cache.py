"""An in-process LRU of scope vector matrices, bounded in bytes.

Reading a scope's vectors from SQLite costs ~2.5 ms per 1,000 rows; a cached matrix costs a
version check. Entries are keyed by scope and stamped with the scope's versions; a stamp that
no longer matches the store means another writer (thread or process) changed the scope.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Hashable

import numpy as np


#: rows in use of each growth buffer (``appended``), by its id; a buffer leaves once no matrix views it
_used: dict[int, int] = {}
_used_lock = threading.Lock()


def appended(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """``np.concatenate([old, new])`` (along rows) without copying ``old`` each time: a matrix
    made here is a view of a buffer with room to spare, and the next rows go in that room when
    ``old`` is still its last view (else a new buffer). Under load the learner adds a memory
    every few chats and each search then grew a 10k x 256 matrix by copying it (~1-2 ms); views
    already handed out never see the room being written (it is past their end)."""
    n, k = len(old), len(new)
    base = old.base
    if isinstance(base, np.ndarray) and base.dtype == old.dtype and base.shape[1:] == old.shape[1:] and len(base) >= n + k \
            and old.ctypes.data == base.ctypes.data:
        with _used_lock:
            if _used.get(id(base)) == n:
                base[n:n + k] = new
                _used[id(base)] = n + k
                return base[:n + k]
    buffer = np.empty((n + k + max(64, (n + k) // 8), *old.shape[1:]), dtype=old.dtype)
    buffer[:n] = old
    buffer[n:n + k] = new
    with _used_lock:
        _used[id(buffer)] = n + k
    weakref.finalize(buffer, _used.pop, id(buffer), None)
    return buffer[:n + k]


@dataclass(frozen=True)
class ScopeVectors:
    stamp: tuple[int, ...]
    rowids: np.ndarray  # sorted int64
    matrix: np.ndarray  # float32, one row per rowid
    #: the scope's rewrite counts when built: equal counts mean rows were only added since
    rewrites: tuple[int, ...] = ()

    @property
    def nbytes(self) -> int:
        return int(self.rowids.nbytes + self.matrix.nbytes)


class VectorCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, ScopeVectors] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, stamp: tuple[int, ...]) -> ScopeVectors | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.stamp != stamp:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return entry

    def peek(self, key: Hashable) -> ScopeVectors | None:
        """The entry whatever its stamp (the caller decides whether it can be extended)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: Hashable, entry: ScopeVectors) -> None:
        if entry.nbytes > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = entry
            self._bytes += entry.nbytes
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _drop(self, key: Hashable) -> None:
        self._bytes -= self._entries.pop(key).nbytes
