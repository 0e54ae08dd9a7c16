"""The values the engine hands out, and their exact public dict shapes (product.md section 2)."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

SCOPE_FIELDS = ("user_id", "agent_id", "run_id")


def utc_now() -> str:
    """Timestamps are ISO 8601 in UTC, so that string order is time order in every store."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def expiry_instant(expiration_date: str | None) -> str | None:
    """The instant a memory with this ``expiration_date`` stops being recalled, as stores keep
    it (``expires_at``, ISO 8601 UTC, so string order is time order): a date (``YYYY-MM-DD``,
    as mem0's Platform takes it) counts through that whole day in UTC, so its memory goes at the
    next midnight; a datetime at that instant. None: it never expires, and so does a value that
    cannot be read (expiry fails open, as mem0's: a bad date never makes a memory vanish)."""
    if not expiration_date:
        return None
    try:
        if len(expiration_date) == 10:
            day = _dt.date.fromisoformat(expiration_date)
            when = _dt.datetime(day.year, day.month, day.day, tzinfo=_dt.timezone.utc) + _dt.timedelta(days=1)
        else:
            when = _dt.datetime.fromisoformat(expiration_date.replace("Z", "+00:00"))
            when = when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)
    except (TypeError, ValueError, OverflowError):
        return None
    return when.astimezone(_dt.timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Scope:
    """Who a memory belongs to. An add's scope is the exact triple; a search matches given ids."""

    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None

    def __post_init__(self) -> None:
        # the key's separator in an id would let two scopes share a key (and one's adds be
        # dropped as the other's duplicates); the faces refuse control characters with a clear
        # error (engine.validation), this keeps the invariant whoever builds a Scope
        if any(v and "\x1f" in v for v in (self.user_id, self.agent_id, self.run_id)):
            from memlane.errors import ValidationError

            raise ValidationError("a scope id must not contain the control character \\x1f", param="user_id")

    @property
    def key(self) -> str:
        """Stable identity of the exact triple (dedup and per-scope locking)."""
        return "\x1f".join(v or "" for v in (self.user_id, self.agent_id, self.run_id))

    def is_empty(self) -> bool:
        return not (self.user_id or self.agent_id or self.run_id)

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in zip(SCOPE_FIELDS, (self.user_id, self.agent_id, self.run_id)) if v}


@dataclass
class MemoryRecord:
    id: str
    memory: str
    hash: str
    metadata: dict[str, Any] = field(default_factory=dict)
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    created_at: str = ""
    updated_at: str = ""
    #: when it stops being recalled, searched and listed (unless asked for): ``YYYY-MM-DD``
    #: (through that day, UTC) or an ISO 8601 instant in UTC; None: never (see ``expiry_instant``)
    expiration_date: str | None = None
    #: never rewritten by reconciliation (a contradicting fact is added beside it) nor by ``update``
    immutable: bool = False

    @property
    def scope(self) -> Scope:
        return Scope(self.user_id, self.agent_id, self.run_id)

    def expired(self, now: str | None = None) -> bool:
        """Whether its expiration has passed at ``now`` (ISO 8601 UTC; default the current time)."""
        instant = expiry_instant(self.expiration_date)
        return instant is not None and instant <= (now or utc_now())

    def to_dict(self) -> dict[str, Any]:
        """The contract's shape; ``expiration_date``, ``immutable`` and ``categories`` (mem0's
        top-level copy of ``metadata.categories``) only on memories that have them."""
        out: dict[str, Any] = {
            "id": self.id,
            "memory": self.memory,
            "metadata": dict(self.metadata),
            "user_id": self.user_id,
            "agent_id": self.agent_id,
            "run_id": self.run_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if self.expiration_date is not None:
            out["expiration_date"] = self.expiration_date
        if self.immutable:
            out["immutable"] = True
        if isinstance(self.metadata.get("categories"), list):
            out["categories"] = list(self.metadata["categories"])
        return out


@dataclass
class SearchHit:
    record: MemoryRecord
    score: float
    #: The two signals behind ``score``, kept for benchmarks and debugging.
    dense: float | None = None
    keyword: float | None = None
    #: Set when a reranker ordered the results: ``score`` is then the reranker's relevance (in
    #: [0, 1], what the order and ``threshold`` follow) and this is the fused hybrid score it had.
    hybrid_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        record = self.record.to_dict()
        # score right after memory, as mem0 orders it
        out = {"id": record.pop("id"), "memory": record.pop("memory"), "score": round(float(self.score), 6)}
        if self.hybrid_score is not None:
            # mem0's name for a reranker's score, beside the fused score it replaced
            out["rerank_score"] = out["score"]
            out["hybrid_score"] = round(float(self.hybrid_score), 6)
        return {**out, **record}


@dataclass
class HistoryEvent:
    id: str
    memory_id: str
    event: str  # ADD | UPDATE | DELETE
    old_memory: str | None
    new_memory: str | None
    actor_id: str | None
    created_at: str
    #: why, when the event is not what it looks like (an ADD made beside an immutable memory
    #: that reconciliation would have updated or deleted)
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """mem0's shape; ``reason`` only on events that have one."""
        out: dict[str, Any] = {
            "id": self.id,
            "memory_id": self.memory_id,
            "event": self.event,
            "old_memory": self.old_memory,
            "new_memory": self.new_memory,
            "actor_id": self.actor_id,
            "created_at": self.created_at,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        return out
