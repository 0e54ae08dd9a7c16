"""Feedback on memories, kept in the store's own database (mem0 Platform's ``feedback``).

Every feedback given is a row, so what a memory was told over time stays readable; the latest
row is the memory's current feedback (``feedback`` None: withdrawn). Rows outlive their memory,
as its history does, and travel with it in an export. ``SQLFeedback`` is the one
implementation, on the connections of the SQL store it belongs to.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Literal, Mapping, Protocol, Sequence

#: mem0's values (``MemoryClient.feedback`` checks them too); None withdraws a feedback
FEEDBACK_VALUES = ("POSITIVE", "NEGATIVE", "VERY_NEGATIVE")
FeedbackValue = Literal["POSITIVE", "NEGATIVE", "VERY_NEGATIVE"]


@dataclass(frozen=True)
class Feedback:
    id: str
    memory_id: str
    feedback: str | None
    feedback_reason: str | None
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        """mem0's field names (``feedback``, ``feedback_reason``) with the row's id and time."""
        return {"id": self.id, "memory_id": self.memory_id, "feedback": self.feedback,
                "feedback_reason": self.feedback_reason, "created_at": self.created_at}


class FeedbackLog(Protocol):
    """What the engine needs from a store's feedback table (``store.feedback``)."""

    def add(self, memory_id: str, feedback: str | None, reason: str | None, when: str) -> Feedback: ...

    def of(self, memory_id: str) -> list[Feedback]:
        """The memory's feedback, oldest first."""
        ...

    def restore(self, entries: Sequence[Mapping[str, Any]]) -> int:
        """Write exported rows back (ids kept; a row already held is skipped); how many were new."""
        ...


Transaction = Callable[[str], ContextManager[Any]]


class SQLFeedback:
    """The ``feedback`` table of a SQL store. ``table`` is its full name, ``mark`` the driver's
    placeholder, ``write``/``read`` the store's own connections."""

    def __init__(self, table: str, write: Transaction, read: Transaction, *, mark: str) -> None:
        self.t = table
        self._write = write
        self._read = read
        self._m = mark

    def _sql(self, text: str) -> str:
        return text.replace("{t}", self.t).replace("?", self._m)

    def add(self, memory_id: str, feedback: str | None, reason: str | None, when: str) -> Feedback:
        row = Feedback("fb_" + uuid.uuid4().hex, memory_id, feedback, reason, when)
        with self._write("storing feedback") as conn:
            conn.execute(self._sql("INSERT INTO {t} (id, memory_id, feedback, feedback_reason, created_at) VALUES (?, ?, ?, ?, ?)"),
                         (row.id, row.memory_id, row.feedback, row.feedback_reason, row.created_at))
        return row

    def of(self, memory_id: str) -> list[Feedback]:
        with self._read("reading feedback") as conn:
            rows = conn.execute(self._sql("SELECT id, memory_id, feedback, feedback_reason, created_at FROM {t}"
                                          " WHERE memory_id = ? ORDER BY seq"), (memory_id,)).fetchall()
        return [Feedback(r["id"], r["memory_id"], r["feedback"], r["feedback_reason"], r["created_at"]) for r in rows]

    def restore(self, entries: Sequence[Mapping[str, Any]]) -> int:
        if not entries:
            return 0
        with self._write("restoring feedback") as conn:
            added = 0
            for e in entries:
                cur = conn.execute(self._sql("INSERT INTO {t} (id, memory_id, feedback, feedback_reason, created_at)"
                                             " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"),
                                   (e["id"], e["memory_id"], e.get("feedback"), e.get("feedback_reason"), e["created_at"]))
                added += max(cur.rowcount, 0)
        return added


__all__ = ["FEEDBACK_VALUES", "Feedback", "FeedbackLog", "FeedbackValue", "SQLFeedback"]
