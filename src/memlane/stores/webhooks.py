"""A project's webhooks and their durable delivery queue, in the store's own database.

Why here: a delivery row is written by ``enqueue(conn, applied)`` inside the transaction that
changes the memory (``apply``, ``delete_where``), as the outbox is finished in the one that
applies what was learnt. So a change that commits is always announced, and one that rolls back
never is, whatever process dies when; a chat or a write pays one small read (the active
webhooks) and an insert per subscribed webhook, never a network call.

Delivery (``memlane.server.webhook_deliverer``) claims a due row with a lease (owner + expiry,
``FOR UPDATE SKIP LOCKED`` where the database has it), at most one leased row per webhook (a
slow receiver holds up only its own deliveries), POSTs its body, and records the attempt with
``finish``: delivered, due again after a backoff, or dead after the last allowed attempt. A
lease whose worker stopped (a server restart) is released, or expires, and the row is claimed
again: no pending delivery is lost. Each row's id is its idempotency key, sent in the body and
a header, the same on every attempt, so a receiver that saw an attempt succeed but whose answer
was lost keeps the event once.

The body is mem0's webhook payload (``event_details``: the memory's id, ``data.memory`` and
the event, ``ADD``/``UPDATE``/``DELETE``) with memlane's fields beside it; it is fixed when
queued, so every attempt sends (and signs) the same bytes.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Literal, Protocol, Sequence

from memlane.stores.base import Applied
from memlane.stores.sql_text import narrowed

#: mem0's event type of each history event (``memory_add`` ...; mem0's older ``memory:add`` is read too)
EVENT_TYPES = {"ADD": "memory_add", "UPDATE": "memory_update", "DELETE": "memory_delete"}
DeliveryStatus = Literal["pending", "delivered", "dead"]
#: delivered rows are pruned at most this often (per queue object)
PRUNE_EVERY_SECONDS = 60.0


def iso(when: float | None) -> str | None:
    """Unix seconds as the ISO 8601 UTC text memories use."""
    if when is None:
        return None
    return _dt.datetime.fromtimestamp(when, _dt.timezone.utc).isoformat(timespec="microseconds")


@dataclass
class Webhook:
    id: str
    name: str
    url: str
    secret: str
    event_types: list[str]
    is_active: bool
    created_at: str
    updated_at: str

    def to_dict(self) -> dict[str, Any]:
        """mem0's names (``webhook_id``, ``event_types``, ``is_active``) and the signing secret."""
        return {"webhook_id": self.id, "name": self.name, "url": self.url, "event_types": list(self.event_types),
                "is_active": self.is_active, "secret": self.secret, "created_at": self.created_at, "updated_at": self.updated_at}


@dataclass(frozen=True)
class Attempt:
    attempt: int
    at: float
    status_code: int | None
    error: str | None
    duration_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "at": iso(self.at), "status_code": self.status_code, "error": self.error,
                "duration_ms": None if self.duration_ms is None else round(self.duration_ms, 1)}


@dataclass
class Delivery:
    id: str
    webhook_id: str
    event: str
    memory_id: str | None
    body: str
    status: DeliveryStatus
    attempts: int
    created_at: float
    next_attempt_at: float
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: float | None = None
    #: set on a claimed delivery: where it goes, the key it is signed with, who holds the lease
    url: str | None = None
    secret: str | None = field(default=None, repr=False)
    owner: str | None = None

    def to_dict(self, attempts: Sequence[Attempt] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "webhook_id": self.webhook_id, "event": self.event, "memory_id": self.memory_id, "status": self.status,
            "attempts": self.attempts, "last_status": self.last_status, "last_error": self.last_error,
            "created_at": iso(self.created_at), "next_attempt_at": iso(self.next_attempt_at) if self.status == "pending" else None,
            "delivered_at": iso(self.delivered_at), "payload": json.loads(self.body),
        }
        if attempts is not None:
            out["attempt_log"] = [a.to_dict() for a in attempts]
        return out


def delivery_body(applied: Applied, *, delivery_id: str, event_id: str, webhook_id: str, when: str) -> str:
    """The JSON a delivery POSTs: mem0's ``event_details`` first, then memlane's own fields
    (``event_type``, ``idempotency_key``, the whole ``memory``, ``previous_memory``)."""
    record = applied.record.to_dict()
    payload = {
        "event_details": {"id": record["id"], "data": {"memory": record["memory"]}, "event": applied.event},
        "event_type": EVENT_TYPES[applied.event], "idempotency_key": delivery_id, "event_id": event_id,
        "webhook_id": webhook_id, "created_at": when, "memory": record, "previous_memory": applied.previous_memory,
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


class WebhookQueue(Protocol):
    """What the engine needs from a store's webhooks (``store.webhooks``)."""

    def create(self, webhook: Webhook) -> Webhook: ...
    def list(self) -> list[Webhook]: ...
    def get(self, webhook_id: str) -> Webhook | None: ...
    def update(self, webhook_id: str, changes: dict[str, Any], when: str) -> Webhook | None: ...
    def delete(self, webhook_id: str) -> bool: ...
    def enqueue(self, conn: Any, applied: Sequence[Applied]) -> int: ...
    def claim(self, owner: str, lease_seconds: float) -> Delivery | None: ...
    def finish(self, delivery: Delivery, *, status_code: int | None, error: str | None, duration_ms: float,
               delivered: bool, retry_in: float | None, keep_delivered_seconds: float) -> bool: ...
    def release(self, owner: str) -> int: ...
    def deliveries(self, webhook_id: str | None, status: str | None, limit: int) -> list[Delivery]: ...
    def delivery(self, delivery_id: str) -> Delivery | None: ...
    def attempts(self, delivery_id: str) -> list[Attempt]: ...
    def requeue(self, delivery_ids: Sequence[str] | None) -> int: ...
    def counts(self) -> dict[str, dict[str, int]]: ...


Transaction = Callable[[str], ContextManager[Any]]

_DELIVERY_COLUMNS = ("id, webhook_id, event, memory_id, body, status, attempts, created_at, next_attempt_at, last_status,"
                     " last_error, delivered_at")


class SQLWebhooks:
    """The webhook tables of a SQL store (SQLite or PostgreSQL), on the store's connections.

    ``table(name)`` gives a table's full name; ``mark`` is the driver's placeholder;
    ``skip_locked`` adds ``FOR UPDATE SKIP LOCKED`` to claims; ``claim_lock`` is SQL run first in
    each claim (PostgreSQL's READ COMMITTED would otherwise let two workers lease two rows of
    one webhook at once)."""

    def __init__(self, table: Callable[[str], str], write: Transaction, read: Transaction, *, mark: str,
                 skip_locked: bool = False, claim_lock: str | None = None) -> None:
        self.hooks, self.queue, self.log = table("webhooks"), table("webhook_deliveries"), table("webhook_attempts")
        self._write = write
        self._read = read
        self._m = mark
        self._lock_rows = " FOR UPDATE SKIP LOCKED" if skip_locked else ""
        self._claim_lock = claim_lock
        self._pruned_at = 0.0

    def _sql(self, text: str) -> str:
        return (text.replace("{h}", self.hooks).replace("{d}", self.queue).replace("{a}", self.log).replace("?", self._m))

    # -- the webhooks themselves -------------------------------------------------------------

    @staticmethod
    def _webhook(row: Any) -> Webhook:
        return Webhook(row["id"], row["name"], row["url"], row["secret"], json.loads(row["event_types"]), bool(row["is_active"]),
                       row["created_at"], row["updated_at"])

    def create(self, webhook: Webhook) -> Webhook:
        with self._write("creating a webhook") as conn:
            conn.execute(self._sql("INSERT INTO {h} (id, name, url, secret, event_types, is_active, created_at, updated_at)"
                                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                         (webhook.id, webhook.name, webhook.url, webhook.secret, json.dumps(webhook.event_types),
                          int(webhook.is_active), webhook.created_at, webhook.updated_at))
        return webhook

    def list(self) -> list[Webhook]:
        with self._read("listing webhooks") as conn:
            return [self._webhook(r) for r in conn.execute(self._sql("SELECT * FROM {h} ORDER BY created_at, id")).fetchall()]

    def get(self, webhook_id: str) -> Webhook | None:
        with self._read("reading a webhook") as conn:
            row = conn.execute(self._sql("SELECT * FROM {h} WHERE id = ?"), (webhook_id,)).fetchone()
        return self._webhook(row) if row else None

    def update(self, webhook_id: str, changes: dict[str, Any], when: str) -> Webhook | None:
        """Set ``name``, ``url``, ``event_types`` and/or ``is_active``; None for an unknown id.
        Pending deliveries go to the new URL (a delivery reads its webhook when claimed)."""
        columns = {k: (json.dumps(v) if k == "event_types" else int(v) if k == "is_active" else v)
                   for k, v in changes.items() if k in ("name", "url", "event_types", "is_active")}
        with self._write("updating a webhook") as conn:
            sets = ", ".join(f"{k} = ?" for k in columns)
            done = conn.execute(self._sql(f"UPDATE {{h}} SET {sets + ', ' if sets else ''}updated_at = ? WHERE id = ?"),
                                (*columns.values(), when, webhook_id)).rowcount
            if not done:
                return None
            row = conn.execute(self._sql("SELECT * FROM {h} WHERE id = ?"), (webhook_id,)).fetchone()
        return self._webhook(row)

    def delete(self, webhook_id: str) -> bool:
        """The webhook, its queued deliveries and their attempts (nothing more is sent to it)."""
        with self._write("deleting a webhook") as conn:
            conn.execute(self._sql("DELETE FROM {a} WHERE delivery_id IN (SELECT id FROM {d} WHERE webhook_id = ?)"), (webhook_id,))
            conn.execute(self._sql("DELETE FROM {d} WHERE webhook_id = ?"), (webhook_id,))
            return bool(conn.execute(self._sql("DELETE FROM {h} WHERE id = ?"), (webhook_id,)).rowcount)

    # -- queueing, inside the memory change's transaction ------------------------------------------

    def enqueue(self, conn: Any, applied: Sequence[Applied]) -> int:
        """Queue a delivery of each change to each active webhook subscribed to its event, on
        ``conn`` inside the caller's transaction; returns how many were queued."""
        changes = [a for a in applied if a.event in EVENT_TYPES]
        if not changes:
            return 0
        hooks = [(r["id"], set(json.loads(r["event_types"])))
                 for r in conn.execute(self._sql("SELECT id, event_types FROM {h} WHERE is_active = 1 ORDER BY created_at, id")).fetchall()]
        if not hooks:
            return 0
        now = time.time()
        when = iso(now)
        rows = []
        for change in changes:
            event_type, event_id = EVENT_TYPES[change.event], str(uuid.uuid4())
            for webhook_id, wanted in hooks:
                if event_type in wanted:
                    delivery_id = "whd_" + uuid.uuid4().hex
                    body = delivery_body(change, delivery_id=delivery_id, event_id=event_id, webhook_id=webhook_id, when=str(when))
                    rows.append((delivery_id, webhook_id, event_type, change.record.id, body, now, now))
        if rows:
            conn.cursor().executemany(self._sql(
                "INSERT INTO {d} (id, webhook_id, event, memory_id, body, status, attempts, created_at, next_attempt_at)"
                " VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?)"), rows)
        return len(rows)

    # -- delivery -------------------------------------------------------------------------------

    @staticmethod
    def _delivery(row: Any) -> Delivery:
        return Delivery(row["id"], row["webhook_id"], row["event"], row["memory_id"], row["body"], row["status"], int(row["attempts"]),
                        float(row["created_at"]), float(row["next_attempt_at"]), row["last_status"], row["last_error"],
                        None if row["delivered_at"] is None else float(row["delivered_at"]))

    #: due, pending, not leased, and of a webhook with no leased delivery; oldest first (3 times ``now``)
    CLAIMABLE = ("status = 'pending' AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)"
                 " AND webhook_id NOT IN (SELECT webhook_id FROM {d} WHERE status = 'pending' AND lease_until >= ?)"
                 " ORDER BY next_attempt_at, seq")

    def claim(self, owner: str, lease_seconds: float) -> Delivery | None:
        """Lease the oldest due delivery of a webhook that has none leased, with its webhook's
        URL and secret; None when none is due. Looked for first in a read, so an idle queue
        never takes the write lock that chats' writes need."""
        now = time.time()
        with self._read("reading the webhook queue") as conn:
            due = conn.execute(self._sql(f"SELECT id FROM {{d}} WHERE {self.CLAIMABLE} LIMIT 1"), (now, now, now)).fetchone()
        if due is None:
            return None
        with self._write("claiming a webhook delivery") as conn:
            if self._claim_lock:
                conn.execute(self._claim_lock)
            row = conn.execute(self._sql(
                f"UPDATE {{d}} SET owner = ?, lease_until = ? WHERE id = (SELECT id FROM {{d}} WHERE {self.CLAIMABLE}"
                f" LIMIT 1{self._lock_rows}) RETURNING {_DELIVERY_COLUMNS}"), (owner, now + lease_seconds, now, now, now)).fetchone()
            if row is None:
                return None
            delivery = self._delivery(row)
            hook = conn.execute(self._sql("SELECT url, secret FROM {h} WHERE id = ?"), (delivery.webhook_id,)).fetchone()
        if hook is None:  # deleted meanwhile: its deliveries go with it
            return None
        delivery.url, delivery.secret, delivery.owner = hook["url"], hook["secret"], owner
        return delivery

    def finish(self, delivery: Delivery, *, status_code: int | None, error: str | None, duration_ms: float,
               delivered: bool, retry_in: float | None, keep_delivered_seconds: float) -> bool:
        """Record one attempt of a claimed delivery: ``delivered``; else due again in
        ``retry_in`` seconds; else (``retry_in`` None) dead. The attempt is logged even when
        the lease was lost meanwhile (it happened); False then, and the row is left to its new holder."""
        now = time.time()
        status = "delivered" if delivered else ("pending" if retry_in is not None else "dead")
        with self._write("recording a webhook attempt") as conn:
            held = conn.execute(self._sql(
                "UPDATE {d} SET attempts = attempts + 1, status = ?, last_status = ?, last_error = ?, next_attempt_at = ?,"
                " delivered_at = ?, owner = NULL, lease_until = NULL WHERE id = ? AND owner = ? AND status = 'pending'"),
                (status, status_code, (error or None) and error[:2000], now + (retry_in or 0.0), now if delivered else None,
                 delivery.id, delivery.owner)).rowcount
            conn.execute(self._sql("INSERT INTO {a} (delivery_id, attempt, at, status_code, error, duration_ms) VALUES (?, ?, ?, ?, ?, ?)"),
                         (delivery.id, delivery.attempts + 1, now, status_code, (error or None) and error[:2000], duration_ms))
            if now - self._pruned_at > PRUNE_EVERY_SECONDS:
                self._pruned_at = now
                old = now - keep_delivered_seconds
                conn.execute(self._sql("DELETE FROM {a} WHERE delivery_id IN (SELECT id FROM {d} WHERE status = 'delivered'"
                                       " AND delivered_at < ?)"), (old,))
                conn.execute(self._sql("DELETE FROM {d} WHERE status = 'delivered' AND delivered_at < ?"), (old,))
        return bool(held)

    def release(self, owner: str) -> int:
        """Give back every lease ``owner`` holds (a deliverer stopping): due again at once."""
        with self._write("releasing webhook deliveries") as conn:
            return int(conn.execute(self._sql("UPDATE {d} SET owner = NULL, lease_until = NULL WHERE owner = ?"), (owner,)).rowcount)

    # -- reading the queue ------------------------------------------------------------------------

    def deliveries(self, webhook_id: str | None, status: str | None, limit: int) -> list[Delivery]:
        """Newest first; of one webhook and/or in one status when given."""
        clauses, params = [], []
        if webhook_id is not None:
            clauses.append("webhook_id = ?")
            params.append(webhook_id)
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        with self._read("listing webhook deliveries") as conn:
            rows = conn.execute(self._sql(f"SELECT {_DELIVERY_COLUMNS} FROM {{d}}{where} ORDER BY seq DESC LIMIT ?"),
                                (*params, int(limit))).fetchall()
        return [self._delivery(r) for r in rows]

    def delivery(self, delivery_id: str) -> Delivery | None:
        with self._read("reading a webhook delivery") as conn:
            row = conn.execute(self._sql(f"SELECT {_DELIVERY_COLUMNS} FROM {{d}} WHERE id = ?"), (delivery_id,)).fetchone()
        return self._delivery(row) if row else None

    def attempts(self, delivery_id: str) -> list[Attempt]:
        with self._read("reading webhook attempts") as conn:
            rows = conn.execute(self._sql("SELECT attempt, at, status_code, error, duration_ms FROM {a} WHERE delivery_id = ?"
                                          " ORDER BY seq"), (delivery_id,)).fetchall()
        return [Attempt(int(r["attempt"]), float(r["at"]), r["status_code"], r["error"], r["duration_ms"]) for r in rows]

    def requeue(self, delivery_ids: Sequence[str] | None) -> int:
        """Dead deliveries (all, or these) due again at once, their attempts counted from zero."""
        chosen = narrowed("status = 'dead'", [time.time()], delivery_ids)
        if chosen is None:
            return 0
        where, params = chosen
        with self._write("re-queueing webhook deliveries") as conn:
            return int(conn.execute(self._sql(f"UPDATE {{d}} SET status = 'pending', attempts = 0, next_attempt_at = ? WHERE {where}"),
                                    params).rowcount)

    def counts(self) -> dict[str, dict[str, int]]:
        """``{webhook_id: {"pending": n, "delivered": n, "dead": n}}``."""
        with self._read("counting webhook deliveries") as conn:
            rows = conn.execute(self._sql("SELECT webhook_id, status, count(*) AS n FROM {d} GROUP BY webhook_id, status")).fetchall()
        out: dict[str, dict[str, int]] = {}
        for r in rows:
            out.setdefault(r["webhook_id"], {"pending": 0, "delivered": 0, "dead": 0})[r["status"]] = int(r["n"])
        return out


__all__ = ["EVENT_TYPES", "Attempt", "Delivery", "SQLWebhooks", "Webhook", "WebhookQueue", "delivery_body", "iso"]
