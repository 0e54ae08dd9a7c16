"""pgvector picks its search path per query: exact over what the scope and filter leave when
that is small, HNSW with iterative scans otherwise, so a selective filter in a big scope never
starves the top-k."""

from __future__ import annotations

import uuid

import numpy as np
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from memlane.query.filters import parse_filters
from memlane.engine.identity import content_hash
from memlane.records import MemoryRecord, Scope, utc_now
from memlane.stores.base import Change
from memlane.stores.pg_migrations import MIGRATIONS
from memlane.stores.pgvector import PgVectorStore


def test_a_selective_filter_in_a_big_scope_finds_every_match(pg_uri: str) -> None:
    # the index may give up early (max_scan_tuples 20, ef_search 10; seq scans off so the small
    # table is not simply scanned): only the exact path,
    # chosen because the filter leaves 3 rows, can find all three
    dsn = make_conninfo(**{**conninfo_to_dict(pg_uri), "options": "-c hnsw.max_scan_tuples=20 -c enable_seqscan=off"})
    store = PgVectorStore({"dsn": dsn, "schema_name": "t_paths", "exact_search_max_rows": 50, "hnsw_ef_search": 10})
    try:
        store.bind_embedder("synthetic", 8)
        rng = np.random.default_rng(1)
        now = utc_now()
        changes = []
        for i in range(400):
            text = f"memory {i}"
            vector = rng.standard_normal(8).astype(np.float32)
            if i % 150 == 0:
                vector = -np.ones(8, dtype=np.float32)  # far from the query: the index reaches these last
            changes.append(Change("ADD", MemoryRecord(id=str(uuid.uuid4()), memory=text, hash=content_hash(text),
                                                      metadata={"rare": i % 150 == 0}, user_id="alice", created_at=now,
                                                      updated_at=now), vector))
        with store.bulk_load():  # also gives the planner statistics, as after any big import
            store.apply(changes)
        query = np.ones(8, dtype=np.float32)
        found = store.search(Scope(user_id="alice"), parse_filters({"rare": True}), query, "", 10)
        assert sorted(r.memory for r in store.fetch(list(found.dense)).values()) == ["memory 0", "memory 150", "memory 300"]
        unfiltered = store.search(Scope(user_id="alice"), None, query, "", 10)
        assert len(unfiltered.dense) == 10
    finally:
        store.close()


def test_a_store_from_before_the_scope_columns_is_migrated(pg_uri: str) -> None:
    """Schema version 2 kept vectors without their scope; opening it with this version moves
    the scope beside each vector and searches find the same memories."""
    import psycopg

    store = PgVectorStore({"dsn": pg_uri, "schema_name": "t_m3"})
    store.bind_embedder("synthetic", 4)
    now = utc_now()
    vectors = {"alice": np.array([1, 0, 0, 0], np.float32), "bob": np.array([0, 1, 0, 0], np.float32)}
    store.apply([Change("ADD", MemoryRecord(id=str(uuid.uuid4()), memory=f"{user}'s fact", hash=content_hash(user), user_id=user,
                                            created_at=now, updated_at=now), vector) for user, vector in vectors.items()])
    store.close()
    with psycopg.connect(pg_uri, autocommit=True) as conn:  # back to the version-2 shape
        conn.execute("ALTER TABLE t_m3.vectors DROP COLUMN user_id, DROP COLUMN agent_id, DROP COLUMN run_id, DROP COLUMN scope_key")
        conn.execute("ALTER TABLE t_m3.outbox DROP COLUMN scope_key, DROP COLUMN dead_at,"  # and the version-3 outbox
                     " DROP COLUMN bytes, DROP COLUMN idempotency_key")
        conn.execute("DROP TABLE t_m3.outbox_learnt")
        conn.execute("INSERT INTO t_m3.outbox (id, payload, created_at, next_attempt_at) VALUES"
                     " ('old-item', '{\"scope\": {\"user_id\": \"alice\"}, \"messages\": []}', 0, 0)")
        conn.execute("UPDATE t_m3.schema_version SET version = 2")
    store = PgVectorStore({"dsn": pg_uri, "schema_name": "t_m3"})
    try:
        store.bind_embedder("synthetic", 4)
        for user, vector in vectors.items():
            found = store.search(Scope(user_id=user), None, vector, "", 10)
            assert [r.memory for r in store.fetch(list(found.dense)).values()] == [f"{user}'s fact"]
        with psycopg.connect(pg_uri) as conn:
            assert conn.execute("SELECT version FROM t_m3.schema_version").fetchone() == (len(MIGRATIONS),), "every step ran"
            assert conn.execute("SELECT scope_key, bytes > 0 FROM t_m3.outbox").fetchone() == (Scope(user_id="alice").key, True)
            assert conn.execute("SELECT count(*) FROM t_m3.vectors WHERE scope_key IS NOT NULL").fetchone() == (2,)
    finally:
        store.close()
