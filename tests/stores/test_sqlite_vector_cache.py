"""The SQLite store's in-process matrix of a scope's vectors stays exact as other writers
(another engine on the same file: another process) add, change and delete memories. Additions
extend it; a changed or deleted vector makes it read again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memlane import Memory


def test_the_cached_matrix_follows_adds_updates_and_deletes_by_another_writer(tmp_path: Path, fast_embedder_config: dict[str, Any]) -> None:
    config = {"vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "v.db")}}, "embedder": fast_embedder_config}
    with Memory(config) as reader, Memory(config) as writer:
        writer.add([f"Filler memory number {i}" for i in range(50)], user_id="alice", infer=False)
        assert reader.search("filler memory", user_id="alice", limit=100)["results"]  # builds the cached matrix
        entry = next(iter(reader.store._vectors._entries.values()))
        (tea,) = writer.add("Likes green tea", user_id="alice", infer=False)["results"]
        hits = {h["memory"]: h for h in reader.search("Likes green tea", user_id="alice", limit=3)["results"]}
        assert "Likes green tea" in hits, "an addition by another writer is found"
        grown = next(iter(reader.store._vectors._entries.values()))
        assert len(grown.rowids) == len(entry.rowids) + 1 and grown.rewrites == entry.rewrites, "extended, not read again"
        writer.update(tea["id"], "Likes black coffee")
        top = reader.search("Likes black coffee", user_id="alice", limit=1)["results"][0]
        assert top["memory"] == "Likes black coffee" and top["score"] > 0.99, "a changed vector is read again"
        writer.delete(tea["id"])
        assert all(h["id"] != tea["id"] for h in reader.search("Likes black coffee", user_id="alice", limit=100)["results"])


def test_growing_the_matrix_writes_in_room_to_spare_and_never_under_a_view_handed_out() -> None:
    import numpy as np

    from memlane.stores.vector_cache import appended

    first = appended(np.zeros((0, 4), np.float32), np.ones((10, 4), np.float32))
    second = appended(first, np.full((3, 4), 2, np.float32))
    assert np.shares_memory(first, second), "grown in place: the rows already there are not copied again"
    assert second.shape == (13, 4) and (second[10:] == 2).all() and (second[:10] == 1).all()
    # a search still holding `first` grows it too (it read the scope before the other did): its
    # rows go to a new buffer, never over the rows `second` holds
    stale = appended(first, np.full((2, 4), 3, np.float32))
    assert not np.shares_memory(stale, second)
    assert (second[10:] == 2).all() and (stale[10:] == 3).all() and first.shape == (10, 4)
    assert (appended(np.arange(3), np.arange(3, 5)) == np.arange(5)).all()
