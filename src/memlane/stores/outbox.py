"""The outbox: a durable queue of exchanges to learn from, kept in the store's own database.

Items are claimed with a lease (owner + expiry) so several workers, threads or processes, share
the work; the item is deleted in the same transaction that applies what was learnt (see
``MemoryStore.apply(..., outbox_done=...)``), so an exchange is learnt exactly once even when a
process dies mid-way. A lease whose owner process is gone (same host) is taken over at once.

Fairness: at most one claim per scope is leased at a time, so a slow exchange holds up only its
own scope (whose later exchanges must wait anyway, to be learnt in order), never other users'.

Batches: ``claim_batch`` leases up to ``limit`` items of that one scope at once, oldest first,
under one lease, so the learner can learn them together (memlane.engine.learning); an item
that failed before is claimed alone (it may be the one that failed a batch). What the learner
does not learn from a claim it ``release``s (no attempt counted). ``MemoryStore.apply(...,
outbox_done=[...])`` removes every item of a batch in the one commit, or none of them when any
lease was lost.

Dead letters: an item that failed ``max_attempts`` times, or failed in a way retrying cannot fix
(the memory model does not exist, the key is refused), is set aside as dead. It stays, with its
last error, visible in ``stats()``; ``requeue()`` puts it back once the cause is fixed.

Waiting for learning: an item's id is the exchange's id. ``states(ids)`` tells each one's state
(``queued``, ``learnt``, ``dead``): an item learnt from leaves the outbox, but its id (and
idempotency key) is kept in a second table for ``LEARNT_KEPT_SECONDS``, written in the same
commit, so "learnt" is told apart from "never heard of" (another project's id: each project
has its own store).

Bounds: ``put`` refuses an item when the outbox already holds ``max_items`` items or
``max_bytes`` bytes of payload (live and dead items alike: both take space), so one project
cannot fill the disk; an idempotency key makes a replayed ``put`` return the first id.

``SQLOutbox`` is the one implementation, shared by every SQL store through a small dialect.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol, Sequence

from memlane.errors import ExchangeTooLargeError, OutboxFullError
from memlane.records import Scope
from memlane.stores.sql_text import marks, narrowed

#: how long the id (and idempotency key) of an exchange learnt from is remembered
LEARNT_KEPT_SECONDS = 24 * 3600
#: the learnt table is pruned at most this often (per outbox object)
PRUNE_EVERY_SECONDS = 60.0


@dataclass
class OutboxItem:
    id: str
    payload: dict[str, Any]
    attempts: int
    created_at: float
    owner: str
    last_error: str | None = None


ExchangeStatus = Literal["queued", "learnt", "dead"]


@dataclass(frozen=True)
class ExchangeState:
    """Where one exchange is: ``queued`` (waiting, being learnt or retrying), ``learnt`` (done;
    also when there was nothing to learn) or ``dead`` (set aside, see ``requeue``)."""

    id: str
    status: ExchangeStatus
    attempts: int = 0
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "attempts": self.attempts, "last_error": self.last_error}


@dataclass(frozen=True)
class OutboxBounds:
    """The most an outbox may hold (``outbox.max_queued`` / ``max_queued_mb``); None: no bound."""

    max_items: int | None = None
    max_bytes: int | None = None


class LeaseLost(Exception):
    """The item's lease expired and another worker took it: discard this work (internal)."""


#: what ``MemoryStore.apply(..., outbox_done=...)`` and ``finish`` take: one claimed item, or
#: every item of a batch (removed together or not at all)
OutboxDone = OutboxItem | Sequence[OutboxItem]


def claimed_items(done: OutboxDone) -> list[OutboxItem]:
    """``outbox_done`` as a list (one item or many)."""
    return [done] if isinstance(done, OutboxItem) else list(done)


class Outbox(Protocol):
    """What the learner and the faces need from a store's outbox (``store.outbox``)."""

    def put(self, payload: dict[str, Any], *, item_id: str | None = None, idempotency_key: str | None = None,
            bounds: OutboxBounds | None = None) -> str:
        """Queue an exchange (``payload["scope"]`` names its scope); returns its id (``item_id``
        when given). An ``item_id`` or ``idempotency_key`` already queued or learnt returns that
        item's id and queues nothing. ``OutboxFullError`` (``ExchangeTooLargeError`` for one
        item bigger than the whole bound) when ``bounds`` would be passed."""
        ...

    def states(self, item_ids: Sequence[str]) -> dict[str, ExchangeState]:
        """The state of each known id (unknown ones are absent)."""
        ...

    def claim(self, owner: str, lease_seconds: float) -> OutboxItem | None:
        """Lease the oldest due item of a scope that has none leased; None when none is due."""
        ...

    def claim_batch(self, owner: str, lease_seconds: float, limit: int) -> list[OutboxItem]:
        """Lease up to ``limit`` due items of ONE scope that has none leased, oldest first, under
        one lease (``[]`` when none is due). The scope is the one ``claim`` would pick; an item
        that failed before (``attempts > 0``) comes alone, and ends a batch of others before it."""
        ...

    def release(self, items: Sequence[OutboxItem]) -> None:
        """Give back claimed items not worked on (no attempt counted); ones whose lease another
        worker took over are left alone."""
        ...

    def done(self, item: OutboxDone) -> None:
        """Remove claimed items (one, or a batch: all or none); raises ``LeaseLost`` when another
        worker took any of them over."""
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
        #: the ids (and idempotency keys) of the items learnt from, for ``states`` and replays
        self.learnt = table + "_learnt"
        self._pruned_at = 0.0
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

    def put(self, payload: dict[str, Any], *, item_id: str | None = None, idempotency_key: str | None = None,
            bounds: OutboxBounds | None = None) -> str:
        body = json.dumps(payload, ensure_ascii=False)
        size = len(body.encode("utf-8", errors="surrogatepass"))
        if bounds is not None and bounds.max_bytes is not None and size > bounds.max_bytes:
            raise ExchangeTooLargeError(f"this exchange is {size} bytes, more than the outbox may hold in all "
                                        f"({bounds.max_bytes} bytes, outbox.max_queued_mb)", param="messages")
        new_id, now = item_id or str(uuid.uuid4()), time.time()
        with self._tx("writing to the outbox") as conn:
            known = self._known(conn, item_id, idempotency_key)
            if known is not None:
                return known
            if bounds is not None:
                self._check_room(conn, size, bounds)
            row = conn.execute(
                self._sql("INSERT INTO {t} (id, payload, scope_key, created_at, next_attempt_at, bytes, idempotency_key) VALUES (?, ")
                + self._json_in + self._sql(", ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id"),
                (new_id, body, payload_scope_key(payload), now, now, size, idempotency_key)).fetchone()
            if row is None:  # a concurrent put of the same id or key committed first (PostgreSQL)
                known = self._known(conn, item_id, idempotency_key)
                if known is None:
                    raise OutboxFullError("the outbox refused the exchange: its id is taken", param="id")
                return known
        return str(row["id"])

    def _known(self, conn: Any, item_id: str | None, key: str | None) -> str | None:
        """The id of the item (queued or learnt) with this id or idempotency key, if any."""
        for column, value in (("id", item_id), ("idempotency_key", key)):
            if value is None:
                continue
            for table in (self.t, self.learnt):
                row = conn.execute(self._sql(f"SELECT id FROM {table} WHERE {column} = ? LIMIT 1"), (value,)).fetchone()
                if row is not None:
                    return str(row["id"])
        return None

    def _check_room(self, conn: Any, size: int, bounds: OutboxBounds) -> None:
        """Refuse the item if the outbox is full (its count and size read an index only)."""
        row = conn.execute(self._sql("SELECT count(*) AS n, coalesce(sum(bytes), 0) AS total FROM {t}")).fetchone()
        count, total = int(row["n"]), int(row["total"])
        if bounds.max_items is not None and count >= bounds.max_items:
            raise OutboxFullError(f"the outbox already holds {count} exchanges waiting to be learnt from (outbox.max_queued"
                                  f" is {bounds.max_items}); try again once the learner has caught up", param="messages")
        if bounds.max_bytes is not None and total + size > bounds.max_bytes:
            raise OutboxFullError(f"the outbox already holds {total} bytes of exchanges waiting to be learnt from; this one"
                                  f" ({size} bytes) would pass outbox.max_queued_mb ({bounds.max_bytes} bytes); try again"
                                  " once the learner has caught up", param="messages")

    def states(self, item_ids: Sequence[str]) -> dict[str, ExchangeState]:
        found: dict[str, ExchangeState] = {}
        ids = list(dict.fromkeys(i for i in item_ids if isinstance(i, str)))
        with self._read("reading the outbox") as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                listed = marks(chunk)
                rows = conn.execute(self._sql(f"SELECT id, dead_at, attempts, last_error FROM {{t}} WHERE id IN ({listed})"), chunk)
                for row in rows.fetchall():
                    status: ExchangeStatus = "dead" if row["dead_at"] is not None else "queued"
                    found[row["id"]] = ExchangeState(row["id"], status, int(row["attempts"]), row["last_error"])
                for row in conn.execute(self._sql(f"SELECT id FROM {self.learnt} WHERE id IN ({listed})"), chunk).fetchall():
                    found.setdefault(row["id"], ExchangeState(row["id"], "learnt"))
        return found

    def claim(self, owner: str, lease_seconds: float) -> OutboxItem | None:
        items = self.claim_batch(owner, lease_seconds, 1)
        return items[0] if items else None

    def claim_batch(self, owner: str, lease_seconds: float, limit: int) -> list[OutboxItem]:
        now = time.time()
        # Looked for first in a read, which takes no write lock: while one user's backlog waits
        # behind its leased item, a worker's fruitless claim must not hold up the chats writing
        # to the outbox (measured: claims were 13% of the server's CPU under load, most of it
        # inside the write lock).
        with self._read("reading the outbox") as conn:
            claimable = conn.execute(self._sql(f"SELECT id FROM {{t}} WHERE {self.CLAIMABLE} LIMIT 1"), (now, now, now)).fetchone()
            dead = self._dead_owners(conn, owner, now)
        if claimable is None and not dead:
            return []
        with self._tx("claiming from the outbox") as conn:
            if self._claim_lock:
                conn.execute(self._claim_lock)
            for gone in self._dead_owners(conn, owner, now):  # a killed worker's leases are free now
                conn.execute(self._sql("UPDATE {t} SET owner = NULL, lease_until = NULL WHERE owner = ?"), (gone,))
            head = conn.execute(self._sql(f"SELECT id, scope_key FROM {{t}} WHERE {self.CLAIMABLE} LIMIT 1" + self._lock_rows),
                                (now, now, now)).fetchone()
            if head is None:
                return []
            ids = [head["id"]]
            if limit > 1 and head["scope_key"] is not None:
                ids = self._batch_ids(conn, head["scope_key"], now, limit) or ids
            rows = conn.execute(self._sql(f"UPDATE {{t}} SET owner = ?, lease_until = ? WHERE id IN ({marks(ids)})"
                                          " RETURNING id, payload, attempts, created_at, last_error"),
                                (owner, now + lease_seconds, *ids)).fetchall()
        by_id = {row["id"]: row for row in rows}
        return [self._item(by_id[i], owner) for i in ids if i in by_id]

    def _batch_ids(self, conn: Any, scope_key: str, now: float, limit: int) -> list[str]:
        """A batch of the scope's due, unleased items, oldest first, at most ``limit``: the run
        of items that never failed, or the first item alone when it did."""
        rows = conn.execute(self._sql(
            "SELECT id, attempts FROM {t} WHERE scope_key = ? AND dead_at IS NULL AND next_attempt_at <= ?"
            " AND (lease_until IS NULL OR lease_until < ?) ORDER BY seq LIMIT ?" + self._lock_rows),
            (scope_key, now, now, limit)).fetchall()
        ids: list[str] = []
        for row in rows:
            if row["attempts"] > 0:
                if not ids:
                    ids.append(row["id"])
                break
            ids.append(row["id"])
        return ids

    def release(self, items: Sequence[OutboxItem]) -> None:
        if not items:
            return
        with self._tx("releasing outbox items") as conn:
            for item in items:
                conn.execute(self._sql("UPDATE {t} SET owner = NULL, lease_until = NULL WHERE id = ? AND owner = ?"),
                             (item.id, item.owner))

    def _dead_owners(self, conn: Any, owner: str, now: float) -> list[str]:
        rows = conn.execute(self._sql("SELECT DISTINCT owner FROM {t} WHERE lease_until > ?"), (now,)).fetchall()
        return [row["owner"] for row in rows if row["owner"] != owner and owner_is_dead(row["owner"])]

    #: due, alive, not leased, and of a scope with no leased item; oldest first (3 times ``now``)
    CLAIMABLE = ("dead_at IS NULL AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)"
                 " AND (scope_key IS NULL OR scope_key NOT IN ("
                 "  SELECT scope_key FROM {t} WHERE lease_until >= ? AND scope_key IS NOT NULL))"
                 " ORDER BY next_attempt_at, seq")

    def finish(self, conn: Any, done: OutboxDone) -> None:
        """Remove claimed items (one, or every item of a batch) inside the caller's transaction
        (see ``MemoryStore.apply``), remembering them as learnt in the same commit; ``LeaseLost``
        when any of them was taken over (the caller's transaction then rolls back: all or none)."""
        now = time.time()
        for item in claimed_items(done):
            gone = conn.execute(self._sql("DELETE FROM {t} WHERE id = ? AND owner = ? RETURNING idempotency_key"),
                                (item.id, item.owner)).fetchone()
            if gone is None:
                raise LeaseLost(item.id)
            conn.execute(self._sql(f"INSERT INTO {self.learnt} (id, idempotency_key, learnt_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"),
                         (item.id, gone["idempotency_key"], now))
        if now - self._pruned_at > PRUNE_EVERY_SECONDS:
            self._pruned_at = now
            conn.execute(self._sql(f"DELETE FROM {self.learnt} WHERE learnt_at < ?"), (now - LEARNT_KEPT_SECONDS,))

    def done(self, item: OutboxDone) -> None:
        with self._tx("finishing outbox items") as conn:
            self.finish(conn, item)

    def retry(self, item_id: str, error: str, delay_seconds: float, *, dead: bool = False) -> None:
        now = time.time()
        with self._tx("rescheduling an outbox item") as conn:
            conn.execute(self._sql("UPDATE {t} SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?,"
                                   " owner = NULL, lease_until = NULL, dead_at = ? WHERE id = ?"),
                         (error[:2000], now + delay_seconds, now if dead else None, item_id))

    def requeue(self, item_ids: Sequence[str] | None = None) -> int:
        chosen = narrowed("dead_at IS NOT NULL", [time.time()], item_ids)
        if chosen is None:
            return 0
        where, params = chosen
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


__all__ = ["ExchangeState", "LeaseLost", "Outbox", "OutboxBounds", "OutboxDone", "OutboxItem", "SQLOutbox", "claimed_items", "owner_id",
           "owner_is_dead"]
