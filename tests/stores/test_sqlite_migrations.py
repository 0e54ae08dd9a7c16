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


def test_memories_from_before_expiry_open_as_never_expiring_and_not_immutable(tmp_path: Path) -> None:
    """A version-12 file's memories and history read as before, with no expiry, not immutable,
    and their history rows without a reason; the file can take both from then on."""
    import numpy as np

    from memlane.records import MemoryRecord
    from memlane.stores.base import Change

    path = tmp_path / "old.db"
    store = SQLiteStore({"path": str(path)})
    store.bind_embedder("test", 2)
    (applied,) = store.apply([Change("ADD", MemoryRecord(id="m1", memory="Likes tea", hash="h1", user_id="alice",
                                                          created_at="2024-01-01T00:00:00+00:00", updated_at="2024-01-01T00:00:00+00:00"),
                                     np.ones(2, dtype=np.float32))])
    store.close()
    with sqlite3.connect(path) as db:
        for index in ("memories_expiry_user", "memories_expiry_agent", "memories_expiry_run"):
            db.execute(f"DROP INDEX {index}")
        for column in ("expiration_date", "expires_at", "immutable"):
            db.execute(f"ALTER TABLE memories DROP COLUMN {column}")
        db.execute("ALTER TABLE history DROP COLUMN reason")
        db.execute("PRAGMA user_version = 12")
    store = SQLiteStore({"path": str(path)})
    try:
        record = store.get("m1")
        assert record is not None and record.expiration_date is None and record.immutable is False
        assert [e.to_dict() for e in store.history("m1")][0]["event"] == "ADD" and "reason" not in store.history("m1")[0].to_dict()
        assert not store.has_expired(Scope(user_id="alice"), "2999-01-01T00:00:00+00:00")
        (added,) = store.apply([Change("ADD", MemoryRecord(id="m2", memory="Had a coupon", hash="h2", user_id="alice",
                                                            created_at="2024-01-02T00:00:00+00:00", updated_at="2024-01-02T00:00:00+00:00",
                                                            expiration_date="2024-01-31"), np.ones(2, dtype=np.float32))])
        assert store.has_expired(Scope(user_id="alice"), "2024-02-01T00:00:00.000000+00:00")
        assert not store.has_expired(Scope(user_id="alice"), "2024-01-31T23:59:59.999999+00:00"), "a date counts through its day"
    finally:
        store.close()
