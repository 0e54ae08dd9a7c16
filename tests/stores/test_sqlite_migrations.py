"""A SQLite file from an earlier version opens with this one: its waiting exchanges keep their place."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from memlane.records import Scope
from memlane.stores.sqlite import SQLiteStore


def undo_outbox_bounds(db: sqlite3.Connection) -> None:
    """What m011 added (item sizes, idempotency keys, the learnt table)."""
    db.execute("DROP INDEX outbox_bytes")
    db.execute("DROP INDEX outbox_idempotency")
    db.execute("ALTER TABLE outbox DROP COLUMN bytes")
    db.execute("ALTER TABLE outbox DROP COLUMN idempotency_key")
    db.execute("DROP TABLE outbox_learnt")


def test_an_outbox_from_before_scopes_and_dead_letters_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    SQLiteStore({"path": str(path)}).close()
    with sqlite3.connect(path) as db:  # back to the version-4 file
        undo_outbox_bounds(db)
        db.execute("DROP TABLE memories_fts_terms")
        db.execute("ALTER TABLE scope_versions DROP COLUMN rewrites")
        db.execute("DROP INDEX outbox_scope_lease")
        db.execute("DROP INDEX outbox_claim")
        db.execute("DROP INDEX outbox_leased")
        db.execute("ALTER TABLE outbox DROP COLUMN scope_key")
        db.execute("ALTER TABLE outbox DROP COLUMN dead_at")
        payload = json.dumps({"scope": {"user_id": "alice", "run_id": "r1"}, "messages": [{"role": "user", "content": "hi"}]})
        db.execute("INSERT INTO outbox (id, payload, created_at, next_attempt_at) VALUES ('old-item', ?, 0, 0)", (payload,))
        db.execute("PRAGMA user_version = 4")
    store = SQLiteStore({"path": str(path)})
    try:
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT scope_key FROM outbox").fetchone() == (Scope(user_id="alice", run_id="r1").key,)
        item = store.outbox.claim("me", 60)
        assert item is not None and item.id == "old-item" and item.payload["scope"]["user_id"] == "alice"
    finally:
        store.close()


def test_waiting_exchanges_from_before_bounds_are_sized_and_their_state_told(tmp_path: Path) -> None:
    """A version-10 file's waiting exchanges get their size (they count toward outbox.max_queued_mb)
    and can be waited for: queued, then learnt once done."""
    path = tmp_path / "old.db"
    store = SQLiteStore({"path": str(path)})
    payload = {"scope": {"user_id": "alice"}, "messages": [{"role": "user", "content": "héllo"}]}
    item_id = store.outbox.put(payload)
    store.close()
    with sqlite3.connect(path) as db:
        undo_outbox_bounds(db)
        db.execute("PRAGMA user_version = 10")
    store = SQLiteStore({"path": str(path)})
    try:
        with sqlite3.connect(path) as db:
            (size,) = db.execute("SELECT bytes FROM outbox").fetchone()
        assert size == len(json.dumps(payload, ensure_ascii=False).encode())
        assert store.outbox.states([item_id])[item_id].status == "queued"
        item = store.outbox.claim("me", 60)
        assert item is not None
        store.outbox.done(item)
        assert store.outbox.states([item_id])[item_id].status == "learnt"
    finally:
        store.close()
