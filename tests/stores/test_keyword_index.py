"""Keyword scores come from an in-process index per scope (memlane.stores.keyword_index) that is
derived from the store and kept in step with it: after this engine's adds, updates and deletes,
after another process's writes to the same database, and after the index is dropped, a search
scores exactly what a fresh index built from the store scores, and that is what the SQLite
store's FTS5 query scored before the index existed, on every backend."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from memlane import Memory
from memlane.records import Scope
from memlane.stores.keyword_index import KeywordIndexes

CORPUS = [
    "Bought an espresso machine and a grinder for the new flat",
    "Prefers oat milk in her latte, never sugar",
    "The grinder broke after a week; she asked for a refund",
    "Ordered a dark roast, arabica beans, from the corner shop",
    "Her kettle whistles; she pours water at 94 degrees for filter coffee",
    "Gave a gift box of decaf capsules to her father",
    "Wants a bigger mug for cold brew in summer",
    "The refund for the broken grinder arrived in May",
    "Runs a small coffee stall at the Saturday market",
    "Dislikes robusta; says it tastes burnt and bitter",
]
QUERIES = [
    "did the grinder refund arrive?",
    "what coffee does she drink with milk",
    "espresso machine grinder beans roast",
    "who got the decaf gift box",
    "running a market stall",
    "were the beans stale?",
]


def keyword_scores(memory: Memory, query: str, **scope: str) -> dict[str, float]:
    """The keyword signal of one search, by memory text (store keys differ between stores)."""
    store = memory.store
    found = store.search(Scope(**scope), None, memory._embed([query])[0], query, 50).keyword
    records = store.fetch(list(found))
    return {records[k].memory: round(v, 9) for k, v in found.items() if k in records}


def indexes(memory: Memory) -> KeywordIndexes:
    store: Any = memory.store
    found = getattr(store, "records", store)._keywords
    assert isinstance(found, KeywordIndexes), "the in-process index is on by default"
    return found


def fresh(memory: Memory, query: str, **scope: str) -> dict[str, float]:
    """What an index built now from the store scores (the live one dropped first)."""
    indexes(memory).clear()
    return keyword_scores(memory, query, **scope)


@pytest.fixture
def fts5_reference(tmp_path: Path) -> Callable[[list[str]], dict[str, dict[str, float]]]:
    """The previous scorer: the SQLite store's FTS5 query (``keyword_index_mb: 0``) over the
    given memories, one scope, added as one conversation, with every query term (the FTS5 query
    leaves out common ones by default, for its speed; the index scores them all)."""

    def scores(memories: list[str]) -> dict[str, dict[str, float]]:
        config = {"vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "fts5.db"), "keyword_index_mb": 0,
                                                                  "common_term_share": 0}}}
        with Memory(config) as m:
            m.delete_all(user_id="alice")
            m.add(memories, user_id="alice", infer=False)
            assert m.store._keywords is None
            return {q: keyword_scores(m, q, user_id="alice") for q in QUERIES}

    return scores


def test_scores_equal_fts5_and_follow_adds_updates_and_deletes(make_memory: Callable[..., Memory],
                                                                fts5_reference: Any) -> None:
    memory = make_memory()
    memory.add(CORPUS, user_id="alice", infer=False)
    assert {q: keyword_scores(memory, q, user_id="alice") for q in QUERIES} == fts5_reference(CORPUS)

    ids = {r["memory"]: r["id"] for r in memory.get_all(user_id="alice")["results"]}
    memory.update(ids[CORPUS[2]], "The grinder was repaired under warranty, no refund")
    memory.delete(ids[CORPUS[7]])
    memory.add(["Asked the shop about a refund for stale beans"], user_id="alice", infer=False)
    memory.add(["Refund talk with another user"], user_id="bob", infer=False)
    now = CORPUS[:2] + ["The grinder was repaired under warranty, no refund"] + CORPUS[3:7] + CORPUS[8:] \
        + ["Asked the shop about a refund for stale beans"]

    live = {q: keyword_scores(memory, q, user_id="alice") for q in QUERIES}
    assert "The refund for the broken grinder arrived in May" not in live[QUERIES[0]]
    assert "Asked the shop about a refund for stale beans" in live[QUERIES[-1]]
    assert all("Refund talk with another user" not in found for found in live.values()), "other scopes stay out"
    assert live == {q: fresh(memory, q, user_id="alice") for q in QUERIES}
    # the update and the deletion changed neighbours' contexts too: FTS5 over the same rows agrees
    assert sorted(r["memory"] for r in memory.get_all(user_id="alice")["results"]) == sorted(now)
    assert live == fts5_reference(now)


def test_the_index_catches_up_from_the_journal_without_a_rebuild(make_memory: Callable[..., Memory]) -> None:
    memory = make_memory()
    memory.add(CORPUS, user_id="alice", infer=False)
    keyword_scores(memory, QUERIES[0], user_id="alice")
    (entry,) = indexes(memory)._entries.values()
    built = entry._keys[:]
    memory.add(["A second grinder, a refund again"], user_id="alice", infer=False)
    keyword_scores(memory, QUERIES[0], user_id="alice")
    assert indexes(memory)._entries[(False, "alice", None, None)] is entry
    assert entry._keys[: len(built)] == built, "caught up in place: the old memories kept their slots"
    assert entry.documents == len(CORPUS) + 1


def test_a_dropped_or_evicted_index_is_rebuilt_from_the_store(make_memory: Callable[..., Memory]) -> None:
    memory = make_memory()
    memory.add(CORPUS, user_id="alice", infer=False)
    memory.add(CORPUS[:3], user_id="bob", infer=False)
    before = {q: keyword_scores(memory, q, user_id="alice") for q in QUERIES}
    keyword_scores(memory, QUERIES[0], user_id="bob")
    held = indexes(memory)
    assert len(held._entries) == 2
    held.clear()
    assert {q: keyword_scores(memory, q, user_id="alice") for q in QUERIES} == before
    held.max_bytes = 1  # nothing fits: an index is dropped whenever it is brought up to date
    memory.add(["Asked the shop about a refund for stale beans"], user_id="alice", infer=False)
    squeezed = {q: keyword_scores(memory, q, user_id="alice") for q in QUERIES}
    assert held._entries == {}
    held.max_bytes = 1 << 30
    assert squeezed == {q: fresh(memory, q, user_id="alice") for q in QUERIES}
    assert "Asked the shop about a refund for stale beans" in squeezed[QUERIES[-1]]


@pytest.mark.parametrize("backend", ["sqlite", "pgvector"], indirect=True)
def test_a_big_scope_is_built_in_the_background_and_searched_meanwhile(make_memory: Callable[..., Memory], tmp_path: Path,
                                                                       store_config: Any, fts5_reference: Any) -> None:
    import time

    section = store_config(tmp_path / "big.db")
    section["config"]["keyword_index_inline_rows"] = 3  # ten memories count as a big scope here
    memory = make_memory(tmp_path / "big.db", vector_store=section)
    memory.add(CORPUS, user_id="alice", infer=False)
    meanwhile = keyword_scores(memory, QUERIES[0], user_id="alice")
    assert "The refund for the broken grinder arrived in May" in meanwhile, "the full-text query answers meanwhile"
    entry = indexes(memory)._entries[(False, "alice", None, None)]
    assert memory.store._builder is not None, "built by the store's builder thread"  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while (entry.building or entry.version is None) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert entry.version is not None and entry.documents == len(CORPUS)
    assert {q: keyword_scores(memory, q, user_id="alice") for q in QUERIES} == fts5_reference(CORPUS)
    memory.add(["Asked the shop about a refund for stale beans"], user_id="alice", infer=False)
    assert "Asked the shop about a refund for stale beans" in keyword_scores(memory, QUERIES[-1], user_id="alice")
    assert entry.documents == len(CORPUS) + 1, "caught up inline from the journal, not rebuilt"


WRITER = """
import json, sys
from memlane import Memory
config, records = json.loads(sys.argv[1]), json.loads(sys.argv[2])
with Memory(config) as m:
    if records is None:
        ids = {r["memory"]: r["id"] for r in m.get_all(user_id="alice")["results"]}
        m.update(ids[sys.argv[3]], "The grinder was repaired under warranty, no refund")
        m.delete(ids[sys.argv[4]])
        m.add(["Asked the shop about a refund for stale beans"], user_id="alice", infer=False)
    else:
        # Qdrant local mode is one process per folder: the other instance writes the records
        # store (where the keyword index and its journal live), as a second server would
        from memlane import registry
        from memlane.engine.identity import content_hash
        from memlane.records import MemoryRecord, Scope, utc_now
        from memlane.stores.base import Change
        if records["provider"] == "postgres":  # as the Qdrant store opens it: no HNSW index of its own
            from memlane.stores.pgvector import PgVectorStore
            store = PgVectorStore(records["config"], vector_index=False)
        else:
            store = registry.get_factory("vector_store", records["provider"])(records["config"])
        ids = {r.memory: r for r in store.list(Scope(user_id="alice"), None, None)}
        old = ids[sys.argv[3]]
        text = "The grinder was repaired under warranty, no refund"
        old.memory, old.hash, old.updated_at = text, content_hash(text), utc_now()
        vectors = m._embed([text, "Asked the shop about a refund for stale beans"])
        now = utc_now()
        new = MemoryRecord(id="c0ffee00-0000-4000-8000-000000000001", memory="Asked the shop about a refund for stale beans",
                           hash=content_hash("Asked the shop about a refund for stale beans"), user_id="alice",
                           created_at=now, updated_at=now)
        store.apply([Change("UPDATE", old, vectors[0]), Change("DELETE", ids[sys.argv[4]]), Change("ADD", new, vectors[1])],
                    track_sync=True)
        store.close()
"""


def test_writes_from_another_process_reach_the_index(make_memory: Callable[..., Memory], backend: str,
                                                      tmp_path: Path, fts5_reference: Any) -> None:
    memory = make_memory()
    memory.add(CORPUS, user_id="alice", infer=False)
    before = {q: keyword_scores(memory, q, user_id="alice") for q in QUERIES}
    config = json.loads(json.dumps({k: v for k, v in memory.config.model_dump(mode="json").items()
                                    if k in ("vector_store", "embedder", "llm")}))
    records = None
    if backend.startswith("qdrant"):
        section = config["vector_store"]["config"]
        records = section.get("records") or {"provider": "sqlite", "config": {"path": str(Path(section["path"]) / "records.db")}}
        config = {"vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "embedder-only.db")}}}
    done = subprocess.run([sys.executable, "-c", WRITER, json.dumps(config), json.dumps(records), CORPUS[2], CORPUS[7]],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    after = {q: keyword_scores(memory, q, user_id="alice") for q in QUERIES}
    assert after != before
    assert "Asked the shop about a refund for stale beans" in after[QUERIES[-1]]
    assert "The refund for the broken grinder arrived in May" not in after[QUERIES[0]]
    assert after == {q: fresh(memory, q, user_id="alice") for q in QUERIES}
    expected = CORPUS[:2] + ["The grinder was repaired under warranty, no refund"] + CORPUS[3:7] + CORPUS[8:] \
        + ["Asked the shop about a refund for stale beans"]
    assert after == fts5_reference(expected)


def test_many_rewrites_compact_the_index_to_what_a_fresh_build_scores() -> None:
    from memlane.stores.keyword_index import ScopeKeywords

    texts = {k: f"{CORPUS[k % len(CORPUS)]} number {k}" for k in range(1, 1501)}
    index = ScopeKeywords(0.5)
    index.build(list(texts), list(texts.values()), ["coffee context"] * len(texts), [1] * len(texts))
    for k in [*range(1, 1501), *range(1, 301)]:  # each rewrite leaves a dead slot until the index compacts
        texts[k] = f"rewritten {CORPUS[(k + 3) % len(CORPUS)]} café {k} {k % 7}"
        index.put(k, texts[k], "coffee context", 1)
    index.remove(1500)
    del texts[1500]
    assert len(index._keys) < 1500 + 1800, "compacted"
    fresh = ScopeKeywords(0.5)
    fresh.build(list(texts), list(texts.values()), ["coffee context"] * len(texts), [1] * len(texts))
    for query in (["grinder", "refund"], ["cafe", "coffe"], ["rewritten", "number", "1499"]):
        got, want = index.search(query, 50), fresh.search(query, 50)
        assert {k: round(v, 9) for k, v in got.items()} == {k: round(v, 9) for k, v in want.items()}
