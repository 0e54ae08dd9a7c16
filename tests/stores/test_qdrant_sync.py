"""SQL is the source of truth beside Qdrant: a memory written while Qdrant fails is stored and
found (searches fall back to the vectors SQL keeps), and reaches Qdrant when it is back (at the
next write in a running engine, or at the next start)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
from qdrant_client import QdrantClient

from memlane import Memory
from memlane.records import Scope


def points(memory: Memory) -> int:
    store: Any = memory.store
    return int(store.qdrant.count(store.qoptions.collection_name, exact=True).count)


def dense_hit(memory: Memory, text: str) -> bool:
    """Found by the vector search itself (the keyword index alone would not count)."""
    store: Any = memory.store
    vector = memory.embedder.embed([text])[0]
    found = store.search(Scope(user_id="alice"), None, vector, "", 10)
    return text in {r.memory for r in store.fetch(list(found.dense)).values()}


@pytest.mark.parametrize("backend", ["qdrant", "qdrant-pg"], indirect=True)
def test_a_write_while_qdrant_fails_is_stored_and_sent_when_it_is_back(memory: Memory) -> None:
    memory.add("Loves Indian food", user_id="alice", infer=False)
    store: Any = memory.store
    store.qdrant.close()  # the real client loses its storage, as when a Qdrant server goes away
    added = memory.add("Is allergic to cheese", user_id="alice", infer=False)["results"][0]
    assert memory.get(added["id"])["memory"] == "Is allergic to cheese", "SQL has it although Qdrant failed"
    found = memory.search("what am I allergic to?", user_id="alice")["results"]  # from the vectors SQL keeps
    assert found[0]["memory"] == "Is allergic to cheese"
    memory.add("Plays chess", user_id="bob", infer=False)
    assert memory.delete_all(user_id="bob")  # gone from SQL while Qdrant is away
    store.qdrant = QdrantClient(path=str(store.qoptions.path))  # Qdrant is back
    memory.add("Drinks green tea", user_id="alice", infer=False)
    assert points(memory) == 3, "cheese sent, bob's point deleted"
    assert dense_hit(memory, "Is allergic to cheese")


@pytest.mark.parametrize("backend", ["qdrant", "qdrant-pg"], indirect=True)
def test_a_restart_re_syncs_what_a_dead_process_never_sent(make_memory: Callable[..., Memory], tmp_path: Path) -> None:
    first = make_memory(tmp_path / "m.db")
    first.add("Loves Indian food", user_id="alice", infer=False)
    doomed = first.add("Has a dog called Rex", user_id="alice", infer=False)["results"][0]
    store: Any = first.store
    store.qdrant.close()
    first.add("Is allergic to cheese", user_id="alice", infer=False)  # stored in SQL only
    first.delete(doomed["id"])  # gone from SQL, its point stays
    first.close()  # the process dies with both changes unsent
    second = make_memory(tmp_path / "m.db")
    assert points(second) == 2
    assert dense_hit(second, "Is allergic to cheese") and not dense_hit(second, "Has a dog called Rex")
    assert second.store.resync() == {"sent": 0, "deleted": 0}  # type: ignore[attr-defined]
