"""A SQLite file from an earlier version opens with this one: its waiting exchanges keep their place."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from memlane.records import Scope
from memlane.stores.sqlite import SQLiteStore


def test_an_outbox_from_before_scopes_and_dead_letters_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    SQLiteStore({"path": str(path)}).close()
    with sqlite3.connect(path) as db:  # back to the version-4 file
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
