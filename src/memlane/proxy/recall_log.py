"""The recall log: for the last chats of a client, what recall searched for, what it injected
(with scores), how long it took, and what learning then changed. The inspector's "why did it
answer that" page reads it.

Bounded (``server.recall_log`` chats, 0 turns it off) and in memory: it holds nothing beyond the
exchange the outbox already keeps, the memories' own texts and ids; it is per process (each
``--workers`` process has its own) and gone at restart.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Sequence

from memlane.records import Scope, SearchHit


class RecallLog:
    def __init__(self, size: int) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=max(size, 1))
        self._by_outbox: dict[str, dict[str, Any]] = {}
        self._enabled = size > 0
        self._lock = threading.Lock()

    def record(self, scope: Scope, query: str, hits: Sequence[SearchHit], recall_ms: float) -> dict[str, Any] | None:
        if not self._enabled:
            return None
        entry = {"at": time.time(), "scope": scope.as_dict(), "query": query, "recall_ms": round(recall_ms, 2),
                 "memories": [{"id": h.record.id, "memory": h.record.memory, "score": round(h.score, 4)} for h in hits],
                 "outbox_id": None, "learned": None}
        with self._lock:
            if len(self._entries) == self._entries.maxlen:
                gone = self._entries[0]
                self._by_outbox.pop(gone.get("outbox_id") or "", None)
            self._entries.append(entry)
        return entry

    def queued(self, entry: dict[str, Any] | None, outbox_id: str | None) -> None:
        if entry is not None and outbox_id:
            with self._lock:
                entry["outbox_id"] = outbox_id
                self._by_outbox[outbox_id] = entry

    def learned(self, outbox_id: str, changes: list[dict[str, Any]]) -> None:
        """What learning from a logged chat's exchange changed (``[]``: nothing)."""
        with self._lock:
            entry = self._by_outbox.pop(outbox_id, None)
            if entry is not None:
                entry["learned"] = changes

    def recent(self, scope: dict[str, str] | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first; only ``scope``'s chats when given."""
        with self._lock:
            entries = [dict(e) for e in reversed(self._entries)]
        return [e for e in entries if not scope or all(e["scope"].get(k) == v for k, v in scope.items())][:limit]
