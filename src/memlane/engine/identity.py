"""What makes a memory itself: a fresh id when it is made, and the content hash under which a
scope holds a text once (the store keeps exact duplicates out by it, whichever way a memory
arrives: learnt, added verbatim, updated by hand or imported)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

from memlane.records import MemoryRecord, Scope


def content_hash(text: str) -> str:
    """Exact-duplicate identity: same text modulo surrounding whitespace and case."""
    return hashlib.md5(" ".join(text.split()).lower().encode()).hexdigest()


@dataclass(frozen=True)
class Lifetime:
    """What an add says about the memories it makes (mem0's Platform add options): when they
    expire (``expiration_date``, checked by ``engine.validation.check_expiration_date``) and
    whether reconciliation and ``update`` must leave them as they are (``immutable``)."""

    expiration_date: str | None = None
    immutable: bool = False


def new_record(text: str, scope: Scope, meta: dict[str, Any], now: str, lifetime: Lifetime | None = None) -> MemoryRecord:
    """A memory not stored yet: ``text`` in ``scope`` under a fresh id, created and updated ``now``."""
    life = lifetime or Lifetime()
    return MemoryRecord(
        id=str(uuid.uuid4()), memory=text, hash=content_hash(text), metadata=dict(meta),
        user_id=scope.user_id, agent_id=scope.agent_id, run_id=scope.run_id, created_at=now, updated_at=now,
        expiration_date=life.expiration_date, immutable=life.immutable,
    )
