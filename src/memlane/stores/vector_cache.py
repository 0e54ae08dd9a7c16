"""An in-process LRU of scope vector matrices, bounded in bytes.

Reading a scope's vectors from SQLite costs ~2.5 ms per 1,000 rows; a cached matrix costs a
version check. Entries are keyed by scope and stamped with the scope's versions; a stamp that
no longer matches the store means another writer (thread or process) changed the scope.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Hashable

import numpy as np


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
