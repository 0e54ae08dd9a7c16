"""The outbox: a durable queue of exchanges to learn from, kept in the store's own database.

Items are claimed with a lease (owner + expiry) so several workers, threads or processes, share
the work; the item is deleted in the same transaction that applies what was learnt (see
``MemoryStore.apply(..., outbox_done=...)``), so an exchange is learnt exactly once even when a
process dies mid-way. A lease whose owner process is gone (same host) is taken over at once.

Fairness: at most one item per scope is leased at a time, so a slow exchange holds up only its
own scope (whose later exchanges must wait anyway, to be learnt in order), never other users'.

Dead letters: an item that failed ``max_attempts`` times, or failed in a way retrying cannot fix
(the memory model does not exist, the key is refused), is set aside as dead. It stays, with its
last error, visible in ``stats()``; ``requeue()`` puts it back once the cause is fixed.

``SQLOutbox`` is the one implementation, shared by every SQL store through a small dialect.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from memlane.records import Scope


@dataclass
class OutboxItem:
    id: str
    payload: dict[str, Any]
    attempts: int
    created_at: float
    owner: str
    last_error: str | None = None


class LeaseLost(Exception):
    """The item's lease expired and another worker took it: discard this work (internal)."""


class Outbox(Protocol):
    """What the learner and the faces need from a store's outbox (``store.outbox``)."""

    def put(self, payload: dict[str, Any]) -> str:
        """Queue an exchange (``payload["scope"]`` names its scope); returns its id."""
        ...

    def claim(self, owner: str, lease_seconds: float) -> OutboxItem | None:
        """Lease the oldest due item of a scope that has none leased; None when none is due."""
        ...

    def done(self, item: OutboxItem) -> None:
        """Remove a claimed item; raises ``LeaseLost`` when another worker took it over."""
        ...

    def retry(self, item_id: str, error: str, delay_seconds: float, *, dead: bool = False) -> None:
        """Count a failed attempt and try again after ``delay_seconds``; ``dead`` sets it aside."""
        ...

    def requeue(self, item_ids: Sequence[str] | None = None) -> int:
        """Put dead items (all, or these) back in the queue with their attempts reset."""
        ...

    def dead(self, limit: int = 100) -> list[OutboxItem]:
        """Dead items, oldest first."""
        ...

    def stats(self) -> dict[str, Any]:
        """``pending`` (live items), ``in_progress``, ``retrying``, ``dead``, ``oldest_age_seconds``, ``last_error``."""
        ...


def owner_id(token: str) -> str:
    """Who holds a lease: ``host:pid:token``; the pid lets a peer on the same host spot a dead owner."""
    return f"{socket.gethostname()}:{os.getpid()}:{token}"


def owner_is_dead(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine: only its lease expiry can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def payload_scope_key(payload: dict[str, Any]) -> str | None:
    scope = payload.get("scope")
    return Scope(**scope).key if isinstance(scope, dict) and scope else None


Transaction = Callable[[str], AbstractContextManager[Any]]


class SQLOutbox:
    """The outbox table of a SQL store (SQLite or PostgreSQL), on the store's own connections.

    ``transaction(action)`` yields a connection inside a write transaction (the store's own, so
    ``finish`` can run inside the transaction that applies what was learnt); ``mark`` is the
    driver's placeholder; ``json_in`` how a JSON parameter is written; ``skip_locked`` adds
    ``FOR UPDATE SKIP LOCKED`` where the database has it; ``claim_lock`` serialises claims.
    """

    def __init__(self, table: str, transaction: Transaction, *, mark: str, json_in: str, skip_locked: bool,
                 read: Transaction | None = None, claim_lock: str | None = None) -> None:
        self.t = table
        #: SQL run first in each claim's transaction where the database's isolation alone would
        #: let two workers lease two items of one scope at once (PostgreSQL's READ COMMITTED)
        self._claim_lock = claim_lock
        self._tx = transaction
        self._read = read or transaction
        self._m = mark
        self._json_in = json_in
        self._lock_rows = " FOR UPDATE SKIP LOCKED" if skip_locked else ""

    def _sql(self, text: str) -> str:
        return text.replace("{t}", self.t).replace("?", self._m)

    @staticmethod
    def _item(row: Any, owner: str) -> OutboxItem:
        payload = row["payload"]
        return OutboxItem(row["id"], json.loads(payload) if isinstance(payload, str) else payload,
                          row["attempts"], row["created_at"], owner, row["last_error"])

    def put(self, payload: dict[str, Any]) -> str:
        import uuid

        item_id, now = str(uuid.uuid4()), time.time()
        with self._tx("writing to the outbox") as conn:
            conn.execute(self._sql("INSERT INTO {t} (id, payload, scope_key, created_at, next_attempt_at) VALUES (?, ")
                         + self._json_in + self._sql(", ?, ?, ?)"),
                         (item_id, json.dumps(payload, ensure_ascii=False), payload_scope_key(payload), now, now))
        return item_id

    def claim(self, owner: str, lease_seconds: float) -> OutboxItem | None:
        now = time.time()
        # Looked for first in a read, which takes no write lock: while one user's backlog waits
        # behind its leased item, a worker's fruitless claim must not hold up the chats writing
        # to the outbox (measured: claims were 13% of the server's CPU under load, most of it
        # inside the write lock).
        with self._read("reading the outbox") as conn:
            claimable = conn.execute(self._sql(f"SELECT id FROM {{t}} WHERE {self.CLAIMABLE} LIMIT 1"), (now, now, now)).fetchone()
            dead = self._dead_owners(conn, owner, now)
        if claimable is None and not dead:
            return None
        with self._tx("claiming from the outbox") as conn:
            if self._claim_lock:
                conn.execute(self._claim_lock)
            for gone in self._dead_owners(conn, owner, now):  # a killed worker's leases are free now
                conn.execute(self._sql("UPDATE {t} SET owner = NULL, lease_until = NULL WHERE owner = ?"), (gone,))
            row = conn.execute(self._sql(
                f"UPDATE {{t}} SET owner = ?, lease_until = ? WHERE id = (SELECT id FROM {{t}} WHERE {self.CLAIMABLE}"
                " LIMIT 1" + self._lock_rows + ") RETURNING id, payload, attempts, created_at, last_error"),
                (owner, now + lease_seconds, now, now, now),
            ).fetchone()
        return None if row is None else self._item(row, owner)

    def _dead_owners(self, conn: Any, owner: str, now: float) -> list[str]:
        rows = conn.execute(self._sql("SELECT DISTINCT owner FROM {t} WHERE lease_until > ?"), (now,)).fetchall()
        return [row["owner"] for row in rows if row["owner"] != owner and owner_is_dead(row["owner"])]

    #: due, alive, not leased, and of a scope with no leased item; oldest first (3 times ``now``)
    CLAIMABLE = ("dead_at IS NULL AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)"
                 " AND (scope_key IS NULL OR scope_key NOT IN ("
                 "  SELECT scope_key FROM {t} WHERE lease_until >= ? AND scope_key IS NOT NULL))"
                 " ORDER BY next_attempt_at, seq")

    def finish(self, conn: Any, item: OutboxItem) -> None:
        """Remove a claimed item inside the caller's transaction (see ``MemoryStore.apply``)."""
        gone = conn.execute(self._sql("DELETE FROM {t} WHERE id = ? AND owner = ?"), (item.id, item.owner)).rowcount
        if not gone:
            raise LeaseLost(item.id)

    def done(self, item: OutboxItem) -> None:
        with self._tx("finishing an outbox item") as conn:
            self.finish(conn, item)

    def retry(self, item_id: str, error: str, delay_seconds: float, *, dead: bool = False) -> None:
        now = time.time()
        with self._tx("rescheduling an outbox item") as conn:
            conn.execute(self._sql("UPDATE {t} SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?,"
                                   " owner = NULL, lease_until = NULL, dead_at = ? WHERE id = ?"),
                         (error[:2000], now + delay_seconds, now if dead else None, item_id))

    def requeue(self, item_ids: Sequence[str] | None = None) -> int:
        now = time.time()
        where, params = "dead_at IS NOT NULL", [now]
        if item_ids is not None:
            if not item_ids:
                return 0
            where += " AND id IN (" + ", ".join("?" for _ in item_ids) + ")"
            params += list(item_ids)
        with self._tx("re-queueing dead outbox items") as conn:
            return int(conn.execute(self._sql(f"UPDATE {{t}} SET dead_at = NULL, attempts = 0, next_attempt_at = ? WHERE {where}"),
                                    params).rowcount)

    def dead(self, limit: int = 100) -> list[OutboxItem]:
        with self._read("reading the outbox") as conn:
            rows = conn.execute(self._sql("SELECT id, payload, attempts, created_at, last_error FROM {t}"
                                          " WHERE dead_at IS NOT NULL ORDER BY seq LIMIT ?"), (limit,)).fetchall()
        return [self._item(row, "") for row in rows]

    def stats(self) -> dict[str, Any]:
        now = time.time()
        with self._read("reading the outbox") as conn:
            row = conn.execute(self._sql(
                "SELECT coalesce(sum(CASE WHEN dead_at IS NULL THEN 1 ELSE 0 END), 0) AS pending,"
                " coalesce(sum(CASE WHEN dead_at IS NULL AND lease_until > ? THEN 1 ELSE 0 END), 0) AS in_progress,"
                " coalesce(sum(CASE WHEN dead_at IS NULL AND attempts > 0 THEN 1 ELSE 0 END), 0) AS retrying,"
                " coalesce(sum(CASE WHEN dead_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS dead,"
                " min(CASE WHEN dead_at IS NULL THEN created_at END) AS oldest FROM {t}"), (now,)).fetchone()
            last = conn.execute(self._sql("SELECT last_error FROM {t} WHERE last_error IS NOT NULL"
                                          " ORDER BY next_attempt_at DESC LIMIT 1")).fetchone()
        return {
            "pending": int(row["pending"]), "in_progress": int(row["in_progress"]), "retrying": int(row["retrying"]),
            "dead": int(row["dead"]), "oldest_age_seconds": (now - row["oldest"]) if row["oldest"] is not None else None,
            "last_error": last["last_error"] if last else None,
        }


__all__ = ["LeaseLost", "Outbox", "OutboxItem", "SQLOutbox", "owner_id", "owner_is_dead"]
