"""pgvector picks its search path per query: exact over what the scope and filter leave when
that is small, HNSW with iterative scans otherwise, so a selective filter in a big scope never
starves the top-k."""

from __future__ import annotations

import uuid

import numpy as np
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from memlane.engine.filters import parse_filters
from memlane.engine.memory import content_hash
from memlane.records import MemoryRecord, Scope, utc_now
from memlane.stores.base import Change
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
