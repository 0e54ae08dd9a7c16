"""A search reads its candidates' records with ``fetch`` (by store key), which names the
columns a record needs instead of reading whole rows: on every backend it must hand back
exactly the record ``get`` reads, every field set (scope ids, metadata, times, expiry,
immutability), or the bonuses and the hits would see a thinner memory."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import pytest

from memlane import Memory
from memlane.records import MemoryRecord, Scope


def test_fetch_reads_every_field_that_get_reads(make_memory: Callable[..., Memory]) -> None:
    fetch_equals_get(make_memory())


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("provider", ["sqlite", "qdrant"])
def test_fetch_reads_every_field_in_memory_stores_too(make_memory: Callable[..., Memory], provider: str) -> None:
    """``path: ":memory:"``: an in-memory SQLite holds the records (behind Qdrant's memory too)."""
    memory = make_memory(vector_store={"provider": provider, "config": {"path": ":memory:"}})
    assert getattr(memory.store, "records", memory.store).in_memory
    fetch_equals_get(memory)


def fetch_equals_get(memory: Memory) -> None:
    memory.add(["Bought a sourdough starter at the market"], user_id="alice", agent_id="cook", run_id="r1", infer=False,
               metadata={"role": "user", "actor_id": "Alice", "tags": ["bread", 2]}, expiration_date="2999-12-31",
               immutable=True, timestamp="2023-05-04T10:00:00+00:00")
    memory.add(["Plain note"], user_id="alice", infer=False)
    store: Any = memory.store
    found = store.search(Scope(user_id="alice"), None, memory._embed(["sourdough market"])[0], "sourdough market", 10)
    keys = list(found.dense.keys() | found.keyword.keys())
    fetched = store.fetch(keys)
    assert len(fetched) == len(keys) == 2
    by_text = {r.memory: r for r in fetched.values()}
    rich = by_text["Bought a sourdough starter at the market"]
    assert (rich.agent_id, rich.run_id, rich.expiration_date, rich.immutable) == ("cook", "r1", "2999-12-31", True)
    assert rich.metadata["actor_id"] == "Alice" and rich.metadata["tags"] == ["bread", 2]
    assert rich.created_at.startswith("2023-05-04") and rich.updated_at
    for record in fetched.values():
        assert record == store.get(record.id)
        assert all(getattr(record, f.name) == getattr(store.get(record.id), f.name) for f in dataclasses.fields(MemoryRecord))
