"""Versioned schema of the SQLite store. Each step runs once, in order, inside a transaction;
``PRAGMA user_version`` records how far a file has come."""

from __future__ import annotations

import sqlite3
from typing import Callable

MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = []


def migration(fn: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    MIGRATIONS.append(fn)
    return fn


def execute_all(db: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated statements inside the caller's transaction (``executescript`` would
    commit first). Migration scripts hold no literal semicolons."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def add_columns(db: sqlite3.Connection, table: str, columns: dict[str, str]) -> None:
    """``ALTER TABLE ... ADD COLUMN`` for the columns the table lacks (SQLite has no ``IF NOT
    EXISTS`` for columns; a file whose version was set back keeps the ones it has)."""
    present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    for name, kind in columns.items():
        if name not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    execute_all(
        db,
        """
        CREATE TABLE store_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE memories (
            rowid INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            memory TEXT NOT NULL,
            hash TEXT NOT NULL,
            scope_key TEXT NOT NULL,
            user_id TEXT,
            agent_id TEXT,
            run_id TEXT,
            metadata TEXT NOT NULL DEFAULT '{}',
            context TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE UNIQUE INDEX memories_scope_hash ON memories (scope_key, hash);
        CREATE INDEX memories_user ON memories (user_id);
        CREATE INDEX memories_agent ON memories (agent_id);
        CREATE INDEX memories_run ON memories (run_id);
        CREATE TABLE vectors (rowid INTEGER PRIMARY KEY, embedding BLOB NOT NULL);
        CREATE VIRTUAL TABLE memories_fts USING fts5 (
            memory, context, scope, tokenize = 'porter unicode61'
        );
        CREATE TABLE history (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            memory_id TEXT NOT NULL,
            event TEXT NOT NULL,
            old_memory TEXT,
            new_memory TEXT,
            actor_id TEXT,
            created_at TEXT NOT NULL
        );
        CREATE INDEX history_memory ON history (memory_id, seq);
        """
    )


def migrate(db: sqlite3.Connection) -> int:
    """Bring a connection's file to the latest schema; returns the version reached."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for index, step in enumerate(MIGRATIONS[version:], start=version + 1):
            step(db)
            db.execute(f"PRAGMA user_version = {index:d}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)



@migration
def m002_scope_versions(db: sqlite3.Connection) -> None:
    """A version per user/agent/run id, bumped by every write that touches it, so a process
    can keep a scope's vectors in memory and know (also across processes) when they are stale."""
    execute_all(db, "CREATE TABLE scope_versions (key TEXT PRIMARY KEY, version INTEGER NOT NULL)")


@migration
def m003_outbox(db: sqlite3.Connection) -> None:
    """Exchanges waiting to be learnt from. A row leaves only in the transaction that applies
    what was learnt from it, so a crash never loses an exchange nor learns it twice."""
    execute_all(
        db,
        """
        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            payload TEXT NOT NULL,
            created_at REAL NOT NULL,
            next_attempt_at REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            owner TEXT,
            lease_until REAL
        );
        CREATE INDEX outbox_due ON outbox (next_attempt_at, seq)
        """,
    )


@migration
def m004_vector_sync(db: sqlite3.Connection) -> None:
    """Memories changed here whose vectors another engine (Qdrant) has not acknowledged yet:
    written in the change's own transaction, removed after the acknowledgement, so a process
    that dies in between leaves a list to re-send instead of a silent gap."""
    execute_all(db, "CREATE TABLE vector_sync (memory_id TEXT PRIMARY KEY)")


@migration
def m005_outbox_scopes_and_dead_letters(db: sqlite3.Connection) -> None:
    """Each outbox item names its scope (one leased item per scope: a slow exchange holds up only
    its own user) and may be set aside as dead (failed for good; re-queued by hand)."""
    execute_all(
        db,
        """
        ALTER TABLE outbox ADD COLUMN scope_key TEXT;
        ALTER TABLE outbox ADD COLUMN dead_at REAL;
        UPDATE outbox SET scope_key = coalesce(json_extract(payload, '$.scope.user_id'), '') || char(31)
            || coalesce(json_extract(payload, '$.scope.agent_id'), '') || char(31)
            || coalesce(json_extract(payload, '$.scope.run_id'), '');
        CREATE INDEX outbox_scope_lease ON outbox (scope_key, lease_until)
        """,
    )


@migration
def m006_fts_term_counts(db: sqlite3.Connection) -> None:
    """How many memories hold each (stemmed) term: keyword search leaves out terms most memories
    share, which would make it rank nearly every memory of a scope for little signal."""
    execute_all(db, "CREATE VIRTUAL TABLE memories_fts_terms USING fts5vocab(memories_fts, 'row')")


@migration
def m007_scope_rewrites(db: sqlite3.Connection) -> None:
    """Besides its version (bumped by every write), each scope counts the writes that change or
    remove a vector. While that count stands still only memories were added, so a cached matrix
    is extended with the new rows instead of read again whole (a 10k scope: ~25 ms a reload)."""
    execute_all(db, "ALTER TABLE scope_versions ADD COLUMN rewrites INTEGER NOT NULL DEFAULT 0")


@migration
def m008_outbox_leases(db: sqlite3.Connection) -> None:
    """Claims read indexes only. Leased items have their own index (each claim looks up the scopes
    being learnt and dead workers' leases), and the live queue one that holds everything a claim
    checks, so passing over a backlog that waits behind its scope's leased item reads no table
    rows (10k items waiting: a claim 4.4 -> 1.0 ms)."""
    execute_all(db, """
        CREATE INDEX IF NOT EXISTS outbox_leased ON outbox (lease_until) WHERE lease_until IS NOT NULL;
        CREATE INDEX IF NOT EXISTS outbox_claim ON outbox (next_attempt_at, seq, scope_key, lease_until) WHERE dead_at IS NULL
        """)


@migration
def m009_conversation_order(db: sqlite3.Connection) -> None:
    """Each scope's memories in the order they were written (an index on the scope alone ends in
    the rowid): every write looks up its neighbours to keep their conversation context."""
    execute_all(db, "CREATE INDEX IF NOT EXISTS memories_scope_order ON memories (scope_key)")


@migration
def m010_history_by_time(db: sqlite3.Connection) -> None:
    """History by date: the inspector and ``memlane status`` count today's changes."""
    execute_all(db, "CREATE INDEX IF NOT EXISTS history_time ON history (created_at)")


@migration
def m011_outbox_bounds_and_learnt(db: sqlite3.Connection) -> None:
    """What waiting for learning and the outbox's bounds need. Each item's size (its own column,
    indexed, so the bound's count and sum read an index, never the payloads) and its optional
    idempotency key (a replayed ``POST /v1/exchanges`` returns the first id); and which
    exchanges were learnt from, kept a while after they leave the outbox, so an exchange's
    state (queued, learnt, dead) can be told and a late replay is still recognised."""
    execute_all(db, """
        ALTER TABLE outbox ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE outbox ADD COLUMN idempotency_key TEXT;
        UPDATE outbox SET bytes = length(CAST(payload AS BLOB));
        CREATE INDEX outbox_bytes ON outbox (bytes);
        CREATE UNIQUE INDEX outbox_idempotency ON outbox (idempotency_key) WHERE idempotency_key IS NOT NULL;
        CREATE TABLE outbox_learnt (id TEXT PRIMARY KEY, idempotency_key TEXT, learnt_at REAL NOT NULL);
        CREATE INDEX outbox_learnt_key ON outbox_learnt (idempotency_key) WHERE idempotency_key IS NOT NULL;
        CREATE INDEX outbox_learnt_time ON outbox_learnt (learnt_at)
        """)


@migration
def m012_scope_changes(db: sqlite3.Connection) -> None:
    """Which memories each scope version changed (their text or context), written by the write
    that bumps the version: an in-process keyword index catches up from it (re-reading those
    rows) instead of rebuilding a scope's whole index after another process wrote to it."""
    execute_all(db, """
        CREATE TABLE IF NOT EXISTS scope_changes (key TEXT NOT NULL, version INTEGER NOT NULL, row_key INTEGER NOT NULL,
            PRIMARY KEY (key, version, row_key)) WITHOUT ROWID
        """)


@migration
def m013_expiry_and_immutable(db: sqlite3.Connection) -> None:
    """A memory's lifetime, as mem0's Platform add takes it: its ``expiration_date`` as given,
    the instant that makes (``expires_at``: searches and lists leave it out after it) and
    ``immutable`` (reconciliation never rewrites it). History rows may say why (``reason``).
    The partial indexes hold only memories that expire, so asking whether a scope holds an
    expired one (every search does) reads a few index entries, never the scope's rows."""
    add_columns(db, "memories", {"expiration_date": "TEXT", "expires_at": "TEXT", "immutable": "INTEGER NOT NULL DEFAULT 0"})
    add_columns(db, "history", {"reason": "TEXT"})
    execute_all(db, """
        CREATE INDEX IF NOT EXISTS memories_expiry_user ON memories (user_id, expires_at) WHERE expires_at IS NOT NULL;
        CREATE INDEX IF NOT EXISTS memories_expiry_agent ON memories (agent_id, expires_at) WHERE expires_at IS NOT NULL;
        CREATE INDEX IF NOT EXISTS memories_expiry_run ON memories (run_id, expires_at) WHERE expires_at IS NOT NULL
        """)


@migration
def m014_feedback_and_webhooks(db: sqlite3.Connection) -> None:
    """Feedback on memories (mem0's POSITIVE / NEGATIVE / VERY_NEGATIVE with a reason, every one
    kept, the latest the current one), the project's webhooks, and their durable delivery queue:
    a delivery row is written in the transaction that changes the memory (as the outbox is
    finished in the one that applies what was learnt), so a change is never lost nor announced
    when it did not happen; each attempt is kept beside it for the inspector and the CLI."""
    execute_all(db, """
        CREATE TABLE IF NOT EXISTS feedback (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, memory_id TEXT NOT NULL,
            feedback TEXT, feedback_reason TEXT, created_at TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS feedback_memory ON feedback (memory_id, seq);
        CREATE TABLE IF NOT EXISTS webhooks (
            id TEXT PRIMARY KEY, name TEXT NOT NULL, url TEXT NOT NULL, secret TEXT NOT NULL, event_types TEXT NOT NULL,
            is_active INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS webhook_deliveries (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, webhook_id TEXT NOT NULL, event TEXT NOT NULL,
            memory_id TEXT, body TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL, next_attempt_at REAL NOT NULL, last_status INTEGER, last_error TEXT,
            delivered_at REAL, owner TEXT, lease_until REAL);
        CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (next_attempt_at, seq) WHERE status = 'pending';
        CREATE INDEX IF NOT EXISTS webhook_deliveries_leased ON webhook_deliveries (lease_until) WHERE lease_until IS NOT NULL;
        CREATE INDEX IF NOT EXISTS webhook_deliveries_hook ON webhook_deliveries (webhook_id, seq);
        CREATE INDEX IF NOT EXISTS webhook_deliveries_done ON webhook_deliveries (delivered_at) WHERE delivered_at IS NOT NULL;
        CREATE TABLE IF NOT EXISTS webhook_attempts (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, delivery_id TEXT NOT NULL, attempt INTEGER NOT NULL, at REAL NOT NULL,
            status_code INTEGER, error TEXT, duration_ms REAL);
        CREATE INDEX IF NOT EXISTS webhook_attempts_delivery ON webhook_attempts (delivery_id, seq)
        """)
