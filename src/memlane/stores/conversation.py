"""Conversation context: what the keyword index sees around each memory.

A memory's keyword context is the text of its neighbours: the memories written just before and
just after it in the same exact scope (user, agent and run), when they lie within
``WINDOW_SECONDS`` of it in time, and its own search keys (``metadata.search_keys``). Measured on LoCoMo, neighbouring turns are the largest single
gain for BM25 (a question's words are often split between a turn and its reply).

The context is derived from the stored order, never from how the memories arrived: turns added
one ``add`` call at a time, in one call, learnt from chats or restored by an import get the same
context, because every write recomputes the context of the memories around the rows it touched
(an added memory's predecessor gains it; a deleted or rewritten memory's neighbours lose its old
text), inside the write's own transaction.
"""

from __future__ import annotations

import bisect
import json
from typing import Any, Iterable, Sequence

from memlane.query.when import parse_time
from memlane.stores.sql_text import marks

#: neighbours further apart in time than this are different conversations
WINDOW_SECONDS = 3600.0


def close_in_time(a: str | None, b: str | None) -> bool:
    first, second = parse_time(a), parse_time(b)
    return first is not None and second is not None and abs((first - second).total_seconds()) <= WINDOW_SECONDS


def search_keys(metadata: Any) -> list[str]:
    """A memory's own search keys (``metadata.search_keys``, written by extraction when
    ``inference.search_keys`` is on): indexed with its context, never shown as its text."""
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            return []
    keys = metadata.get("search_keys") if isinstance(metadata, dict) else None
    return [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []


class ConversationContext:
    """Mixed into the SQL stores. A subclass supplies ``_set_context`` (where its keyword index
    reads the context from) and the attributes of ``SQLStore`` (``key``, ``_sql``)."""

    key: str

    def _sql(self, text: str) -> str:
        raise NotImplementedError

    def _set_context(self, conn: Any, key: Any, memory: str, context: str | None) -> None:
        """Store ``context`` as the memory's context and re-index it."""
        raise NotImplementedError

    def _positions(self, conn: Any, memory_ids: Sequence[str]) -> set[tuple[str, Any]]:
        """``(scope_key, key)`` of these memories, read before a change moves or removes them."""
        if not memory_ids:
            return set()
        rows = conn.execute(self._sql(f"SELECT scope_key, {self.key} AS k FROM {{t}}memories WHERE id IN ({marks(memory_ids)})"),
                            list(memory_ids)).fetchall()
        return {(r["scope_key"], r["k"]) for r in rows}

    def _edge(self, conn: Any, scope_key: str, key: Any, before: bool) -> Any:
        """The key two memories before (or after) ``key`` in the scope, or the furthest there is."""
        op, order = ("<", "DESC") if before else (">", "ASC")
        rows = conn.execute(self._sql(
            f"SELECT {self.key} AS k FROM {{t}}memories WHERE scope_key = ? AND {self.key} {op} ?"
            f" ORDER BY {self.key} {order} LIMIT 2"), (scope_key, key)).fetchall()
        return rows[-1]["k"] if rows else key

    def _refresh_contexts(self, conn: Any, positions: Iterable[tuple[str, Any]]) -> set[tuple[str, Any]]:
        """Recompute the context of the memories at and around each touched position: one read
        of each scope's stretch from two memories before the first position to two after the
        last (a batch of adds is one stretch), then an update where a context changed. Returns
        the ``(scope_key, key)`` of the memories whose context changed."""
        changed: set[tuple[str, Any]] = set()
        by_scope: dict[str, set[Any]] = {}
        for scope_key, key in positions:
            by_scope.setdefault(scope_key, set()).add(key)
        for scope_key, keys in sorted(by_scope.items()):
            low, high = self._edge(conn, scope_key, min(keys), True), self._edge(conn, scope_key, max(keys), False)
            rows = conn.execute(self._sql(
                f"SELECT {self.key} AS k, memory, context, created_at, metadata FROM {{t}}memories"
                f" WHERE scope_key = ? AND {self.key} >= ? AND {self.key} <= ? ORDER BY {self.key}"), (scope_key, low, high)).fetchall()
            order = [row["k"] for row in rows]
            targets: set[int] = set()
            for key in keys:
                at = bisect.bisect_left(order, key)
                present = at < len(order) and order[at] == key
                targets.update(range(at - 1, at + 2) if present else (at - 1, at))  # it and its neighbours, or the gap's
            for at in sorted(t for t in targets if 0 <= t < len(rows)):
                row = rows[at]
                around = [rows[n] for n in (at - 1, at + 1) if 0 <= n < len(rows)]
                context = " ".join([*(n["memory"] for n in around if close_in_time(n["created_at"], row["created_at"])),
                                    *search_keys(row["metadata"])])
                if (context or None) != (row["context"] or None):
                    self._set_context(conn, row["k"], row["memory"], context or None)
                    changed.add((scope_key, row["k"]))
        return changed
