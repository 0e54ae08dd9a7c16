"""New stores get the static default; a store built with MiniLM keeps MiniLM (never a mix of
vector spaces), and export/import moves it to the default, nothing lost (SQLite, PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from memlane import Memory
from memlane.errors import EmbedderMismatchError
from memlane.models import STATIC_MODEL_DIR, provenance
from tests.scenarios import MULTI_PROCESS_BACKENDS

MINILM = {"provider": "sentence_transformers"}


@pytest.mark.parametrize("backend", MULTI_PROCESS_BACKENDS, indirect=True)
def test_a_minilm_store_keeps_its_space_and_moves_over_by_export_and_import(
    tmp_path: Path, store_config: Callable[[Path], dict[str, Any]]
) -> None:
    old = {"vector_store": store_config(tmp_path / "old.db"), "embedder": MINILM}
    with Memory(old) as memory:
        memory.add(["Is allergic to cheese", "Lives in San Francisco", "Plays the cello"], user_id="alice", infer=False)
        (cello,) = [r for r in memory.get_all(user_id="alice")["results"] if "cello" in r["memory"]]
        memory.update(cello["id"], "Plays the cello every Sunday")
    # opened later with no embedder in the config: the store's own model, not the new default
    with Memory({"vector_store": old["vector_store"]}) as reopened:
        assert reopened.embedder_section.provider == "sentence_transformers"
        assert reopened.search("dairy", user_id="alice", limit=1)["results"][0]["memory"] == "Is allergic to cheese"
        exported = list(reopened.export())
    # naming another model explicitly is refused, never mixed
    with pytest.raises(EmbedderMismatchError, match="all-MiniLM-L6-v2"):
        with Memory({**old, "embedder": {"provider": "model2vec"}}) as wrong:
            wrong.search("dairy", user_id="alice")
    # the move: import into a new store on the default (re-runnable: a second import skips all)
    with Memory({"vector_store": store_config(tmp_path / "new.db")}) as new:
        assert new.import_records(exported) == {"imported": 3, "skipped": 0}
        assert new.import_records(exported) == {"imported": 0, "skipped": 3}
        assert new.embedder.model_id == provenance(STATIC_MODEL_DIR)["name"]
        assert new.search("dairy", user_id="alice", limit=1)["results"][0]["memory"] == "Is allergic to cheese"
        moved = {r["memory"]: r for r in new.get_all(user_id="alice")["results"]}
        assert set(moved) == {"Is allergic to cheese", "Lives in San Francisco", "Plays the cello every Sunday"}
        history = new.history(moved["Plays the cello every Sunday"]["id"])
        assert [e["event"] for e in history] == ["ADD", "UPDATE"]


def test_a_new_store_gets_the_static_default(tmp_path: Path) -> None:
    with Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "m.db")}}}) as memory:
        assert memory.embedder_section.provider == "model2vec"
        memory.add("Likes tea", user_id="alice", infer=False)
        assert memory.store.embedding_model() == provenance(STATIC_MODEL_DIR)["name"]
