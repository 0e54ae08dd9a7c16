"""Memory's public methods, shapes and errors, on a real SQLite file and the real MiniLM model."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest

from memlane import AsyncMemory, Memory, NotFoundError, ScopeError, ValidationError

RECORD_KEYS = ["id", "memory", "metadata", "user_id", "agent_id", "run_id", "created_at", "updated_at"]
SEARCH_KEYS = ["id", "memory", "score", "metadata", "user_id", "agent_id", "run_id", "created_at", "updated_at"]
HISTORY_KEYS = ["id", "memory_id", "event", "old_memory", "new_memory", "actor_id", "created_at"]

SEED_FACTS = ["Is allergic to cheese", "Loves Indian food", "Lives in San Francisco"]


def seed(memory: Memory, user_id: str = "alice") -> list[str]:
    result = memory.add([{"role": "user", "content": f} for f in SEED_FACTS], user_id=user_id, infer=False)
    return [r["id"] for r in result["results"]]


def test_add_verbatim_returns_the_contract_shape(memory: Memory) -> None:
    result = memory.add("I love Indian food.", user_id="alice", infer=False, metadata={"source": "web"})
    (item,) = result["results"]
    assert list(item) == ["id", "memory", "event"]
    assert item["memory"] == "I love Indian food." and item["event"] == "ADD"
    record = memory.get(item["id"])
    assert list(record) == RECORD_KEYS
    assert record["metadata"] == {"role": "user", "source": "web"}
    assert record["user_id"] == "alice" and record["agent_id"] is None


def test_messages_may_be_a_string_a_dict_or_a_list(memory: Memory) -> None:
    memory.add("one", user_id="u", infer=False)
    memory.add({"role": "user", "content": "two"}, user_id="u", infer=False)
    memory.add([{"role": "system", "content": "ignored"}, {"role": "user", "content": [{"type": "text", "text": "three"}]},
                {"role": "assistant", "content": "four"}], user_id="u", infer=False)
    texts = sorted(r["memory"] for r in memory.get_all(user_id="u")["results"])
    assert texts == ["four", "one", "three", "two"]


def test_verbatim_turns_may_carry_their_own_metadata(memory: Memory) -> None:
    memory.add([{"role": "user", "content": "first", "metadata": {"turn": 1}}, {"role": "assistant", "content": "second"}],
               user_id="u", infer=False, metadata={"session": "s1"})
    by_text = {r["memory"]: r["metadata"] for r in memory.get_all(user_id="u")["results"]}
    assert by_text == {"first": {"role": "user", "session": "s1", "turn": 1}, "second": {"role": "assistant", "session": "s1"}}
    with pytest.raises(ValidationError, match=r"messages\[0\].metadata must be an object"):
        memory.add([{"role": "user", "content": "x", "metadata": "no"}], user_id="u", infer=False)


def test_exact_duplicates_are_never_stored_twice(memory: Memory) -> None:
    memory.add("Loves tea", user_id="alice", infer=False)
    again = memory.add(["Loves tea", "loves  TEA "], user_id="alice", infer=False)
    assert again["results"] == []
    assert len(memory.get_all(user_id="alice")["results"]) == 1
    # another scope is another memory
    memory.add("Loves tea", user_id="bob", infer=False)
    assert len(memory.get_all(user_id="bob")["results"]) == 1


def test_seed_restaurant_recall_ranks_without_an_absolute_cut(memory: Memory) -> None:
    seed(memory)
    seed(memory, "bob")
    hits = memory.search("Suggest dinner options in San Francisco.", user_id="alice")["results"]
    assert [list(h) for h in hits] == [SEARCH_KEYS] * 3
    assert {h["memory"] for h in hits} == set(SEED_FACTS)  # the allergy is recalled too
    assert hits[0]["memory"] == "Lives in San Francisco"
    assert all(h["user_id"] == "alice" for h in hits)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_search_respects_limit_top_k_and_threshold(memory: Memory) -> None:
    seed(memory)
    assert len(memory.search("food", user_id="alice", limit=1)["results"]) == 1
    assert len(memory.search("food", user_id="alice", top_k=2)["results"]) == 2
    hits = memory.search("Suggest dinner options in San Francisco.", user_id="alice", threshold=0.3)["results"]
    assert [h["memory"] for h in hits] == [h["memory"] for h in hits if h["score"] >= 0.3]
    assert "Is allergic to cheese" not in [h["memory"] for h in hits]


def test_keyword_signal_finds_rare_words_dense_misses(memory: Memory) -> None:
    memory.add(["My locker code is 7319", "I enjoy hiking in the Alps", "My dog is called Biscuit"], user_id="alice", infer=False)
    assert memory.search("what is the code 7319", user_id="alice", limit=1)["results"][0]["memory"] == "My locker code is 7319"
    assert memory.search("Biscuit", user_id="alice", limit=1)["results"][0]["memory"] == "My dog is called Biscuit"


def test_scopes_never_leak(memory: Memory) -> None:
    memory.add("alice secret", user_id="alice", infer=False)
    memory.add("bob secret", user_id="bob", infer=False)
    memory.add("alice in run 1", user_id="alice", run_id="r1", infer=False)
    memory.add("agent note", agent_id="helper", infer=False)
    assert {h["memory"] for h in memory.search("secret", user_id="bob")["results"]} == {"bob secret"}
    assert {h["memory"] for h in memory.search("secret", user_id="alice")["results"]} == {"alice secret", "alice in run 1"}
    assert {h["memory"] for h in memory.search("alice", user_id="alice", run_id="r1")["results"]} == {"alice in run 1"}
    assert {h["memory"] for h in memory.get_all(agent_id="helper")["results"]} == {"agent note"}
    assert memory.search("secret", user_id="carol")["results"] == []


def test_scope_ids_inside_filters_mean_the_same(memory: Memory) -> None:
    seed(memory)
    memory.add("bob fact", user_id="bob", infer=False)
    kw = memory.get_all(user_id="alice")["results"]
    inside = memory.get_all(filters={"user_id": "alice"})["results"]
    assert [r["id"] for r in kw] == [r["id"] for r in inside]
    hits = memory.search("food", filters={"user_id": "alice"})["results"]
    assert {h["user_id"] for h in hits} == {"alice"}
    with pytest.raises(ScopeError, match="user_id is 'alice' but filters say 'bob'"):
        memory.get_all(user_id="alice", filters={"user_id": "bob"})


@pytest.mark.parametrize("method", ["add", "search", "get_all", "delete_all"])
def test_a_scope_is_required(memory: Memory, method: str) -> None:
    call: dict[str, Callable[[], Any]] = {
        "add": lambda: memory.add("x", infer=False),
        "search": lambda: memory.search("x"),
        "get_all": lambda: memory.get_all(),
        "delete_all": lambda: memory.delete_all(filters={"category": "food"}),
    }
    with pytest.raises(ScopeError, match="needs a scope"):
        call[method]()


def test_bad_input_is_a_clear_error(memory: Memory) -> None:
    seed(memory)
    with pytest.raises(ValidationError, match="query must be a non-empty string"):
        memory.search("  ", user_id="alice")
    with pytest.raises(ValidationError, match="limit must be a positive integer"):
        memory.search("x", user_id="alice", limit=0)
    with pytest.raises(ValidationError, match="metadata must be an object"):
        memory.add("x", user_id="alice", infer=False, metadata=["a"])  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="messages"):
        memory.add([], user_id="alice", infer=False)
    with pytest.raises(ValidationError, match="role"):
        memory.add([{"role": "robot", "content": "x"}], user_id="alice", infer=False)
    with pytest.raises(ScopeError, match="must not be empty"):
        memory.add("x", user_id="", infer=False)
    with pytest.raises(ValidationError, match="user_id must be a string"):
        memory.add("x", user_id=7, infer=False)  # type: ignore[arg-type]


@pytest.mark.parametrize("call", ["get", "update", "delete", "history"])
def test_unknown_memory_id(memory: Memory, call: str) -> None:
    with pytest.raises(NotFoundError, match="memory 'nope' not found"):
        if call == "update":
            memory.update("nope", "text")
        else:
            getattr(memory, call)("nope")


def test_update_delete_and_history_keep_every_value(memory: Memory) -> None:
    (memory_id, *_) = seed(memory)
    before = memory.get(memory_id)
    changed = memory.update(memory_id, "Is severely allergic to cheese", metadata={"severity": "high"})
    assert list(changed) == RECORD_KEYS
    assert changed["memory"] == "Is severely allergic to cheese"
    assert changed["metadata"] == {"severity": "high"}
    assert changed["created_at"] == before["created_at"] and changed["updated_at"] > before["updated_at"]
    # the new text is what search now finds
    assert memory.search("severely allergic", user_id="alice", limit=1)["results"][0]["id"] == memory_id
    assert memory.delete(memory_id) == {"message": "Memory deleted successfully!"}
    with pytest.raises(NotFoundError):
        memory.get(memory_id)
    history = memory.history(memory_id)
    assert [list(e) for e in history] == [HISTORY_KEYS] * 3
    assert [(e["event"], e["old_memory"], e["new_memory"]) for e in history] == [
        ("ADD", None, "Is allergic to cheese"),
        ("UPDATE", "Is allergic to cheese", "Is severely allergic to cheese"),
        ("DELETE", "Is severely allergic to cheese", None),
    ]
    assert history[0]["created_at"] <= history[1]["created_at"] <= history[2]["created_at"]


def test_update_of_metadata_alone_keeps_the_text(memory: Memory) -> None:
    (memory_id, *_) = seed(memory)
    changed = memory.update(memory_id, metadata={"severity": "high"})
    assert (changed["memory"], changed["metadata"]) == ("Is allergic to cheese", {"severity": "high"})
    assert memory.search("allergic to cheese", user_id="alice", limit=1)["results"][0]["id"] == memory_id
    with pytest.raises(ValidationError, match="data"):
        memory.update(memory_id)


def test_update_into_an_existing_text_is_refused(memory: Memory) -> None:
    first, second, _ = seed(memory)
    with pytest.raises(ValidationError, match="already holds"):
        memory.update(first, "Loves Indian food")
    assert memory.get(first)["memory"] == "Is allergic to cheese"


def test_delete_all_only_touches_the_scope_and_the_filter(memory: Memory) -> None:
    memory.add("a1", user_id="alice", infer=False, metadata={"k": 1})
    memory.add("a2", user_id="alice", infer=False, metadata={"k": 2})
    memory.add("b1", user_id="bob", infer=False, metadata={"k": 1})
    assert memory.delete_all(user_id="alice", filters={"k": 1}) == {"message": "Memories deleted successfully!"}
    assert [r["memory"] for r in memory.get_all(user_id="alice")["results"]] == ["a2"]
    memory.delete_all(user_id="alice")
    assert memory.get_all(user_id="alice")["results"] == []
    assert [r["memory"] for r in memory.get_all(user_id="bob")["results"]] == ["b1"]


def test_get_all_is_newest_first_and_limited(memory: Memory) -> None:
    for i in range(5):
        memory.add(f"fact {i}", user_id="alice", infer=False)
    listed = memory.get_all(user_id="alice", limit=3)["results"]
    assert [r["memory"] for r in listed] == ["fact 4", "fact 3", "fact 2"]


def test_reset_empties_everything(memory: Memory) -> None:
    ids = seed(memory)
    memory.reset()
    assert memory.get_all(user_id="alice")["results"] == []
    assert memory.store.history(ids[0]) == []
    seed(memory)  # usable again afterwards
    assert len(memory.get_all(user_id="alice")["results"]) == 3


def test_data_survives_reopening_the_file(make_memory: Callable[..., Memory], tmp_path: Any) -> None:
    first = make_memory(tmp_path / "kept.db")
    ids = seed(first)
    first.close()
    second = make_memory(tmp_path / "kept.db")
    assert second.get(ids[0])["memory"] == "Is allergic to cheese"
    assert second.search("cheese", user_id="alice", limit=1)["results"][0]["id"] == ids[0]


def test_async_memory_mirrors_memory(make_memory: Callable[..., Memory]) -> None:
    async def scenario() -> None:
        amem = AsyncMemory(memory=make_memory())
        added = await amem.add("Loves sushi", user_id="alice", infer=False)
        memory_id = added["results"][0]["id"]
        assert (await amem.get(memory_id))["memory"] == "Loves sushi"
        hits = await amem.search("japanese food", user_id="alice")
        assert hits["results"][0]["id"] == memory_id
        await amem.update(memory_id, "Loves sushi and ramen")
        assert [e["event"] for e in await amem.history(memory_id)] == ["ADD", "UPDATE"]
        assert len((await amem.get_all(user_id="alice"))["results"]) == 1
        await amem.delete(memory_id)
        with pytest.raises(NotFoundError):
            await amem.get(memory_id)

    asyncio.run(scenario())


def test_cached_scope_vectors_see_other_writers(make_memory: Callable[..., Memory], tmp_path: Any) -> None:
    """Two engines on one file stand for two processes: each has its own vector cache."""
    reader = make_memory(tmp_path / "shared.db")
    writer = make_memory(tmp_path / "shared.db")
    reader.add("Loves green tea", user_id="alice", infer=False)
    assert [h["memory"] for h in reader.search("chess", user_id="alice")["results"]] == ["Loves green tea"]
    added = writer.add("Plays chess every Sunday", user_id="alice", infer=False)["results"][0]["id"]
    assert reader.search("board games", user_id="alice", limit=1)["results"][0]["id"] == added
    writer.update(added, "Plays go every Sunday")
    top = reader.search("the game of go", user_id="alice", limit=1)["results"][0]
    assert top["memory"] == "Plays go every Sunday"
    writer.delete(added)
    assert [h["memory"] for h in reader.search("go", user_id="alice")["results"]] == ["Loves green tea"]
    writer.reset()
    assert reader.search("tea", user_id="alice")["results"] == []


def test_status_counts_todays_changes_by_when_they_happened(memory: Memory) -> None:
    added = memory.add("Likes tea", user_id="alice", infer=False)["results"][0]["id"]
    memory.add("Likes coffee", user_id="alice", infer=False)
    memory.add("Lived in Lisbon", user_id="alice", infer=False, timestamp="2023-05-08T10:00:00Z")  # said long ago
    memory.update(added, "Likes green tea")
    memory.delete(added)
    status = memory.status()
    assert status["changes_today"] == {"ADD": 2, "UPDATE": 1, "DELETE": 1}
    assert status["memories"] == 2 and status["scopes"]["users"] == 1


def test_delete_all_tells_its_progress(memory: Memory) -> None:
    memory.import_records([{"memory": f"Note {i} on the garden", "user_id": "alice"} for i in range(600)])
    memory.add("Bob's note", user_id="bob", infer=False)
    told: list[tuple[int, int]] = []
    memory.delete_all(user_id="alice", progress=lambda done, total: told.append((done, total)))
    assert told == [(500, 600), (600, 600)]
    assert memory.get_all(user_id="alice")["results"] == [] and len(memory.get_all(user_id="bob")["results"]) == 1


def test_get_all_lists_oldest_first_on_request(memory: Memory) -> None:
    for when, text in (("2023-05-08T10:00:00Z", "First"), ("2023-06-01T10:00:00Z", "Second"), ("2023-07-01T10:00:00Z", "Third")):
        memory.add(text, user_id="alice", infer=False, timestamp=when)
    assert [r["memory"] for r in memory.get_all(user_id="alice")["results"]] == ["Third", "Second", "First"]
    assert [r["memory"] for r in memory.get_all(user_id="alice", oldest_first=True, limit=2)["results"]] == ["First", "Second"]
    with pytest.raises(ValidationError, match="oldest_first"):
        memory.get_all(user_id="alice", oldest_first="yes")  # type: ignore[arg-type]


def test_a_closed_memory_holds_no_connection_to_the_memory_model(
        make_memory: Callable[..., Memory], fast_embedder_config: dict[str, Any], upstream: Any) -> None:
    """``add`` with inference talks to the memory model over a kept-alive connection; ``close``
    lets it go (nothing else would, until the object is collected)."""
    from memlane.testing import Reply, ScriptedRequest
    from tests.threads import wait_until

    def facts(req: ScriptedRequest) -> Reply:
        if req.stage == "extract":
            return Reply.json({"facts": ["Likes tea"]})
        return Reply.json({"memory": [{"id": "0", "text": "Likes tea", "event": "ADD"}]})

    def memory_llm_connections() -> list[Any]:
        ours = [r for r in upstream.chat_requests() if r.stage in ("extract", "reconcile", "repair")]
        return [c for c in upstream.open_connections() if any(c.last is r for r in ours)]

    upstream.handler = facts
    memory = make_memory(embedder=fast_embedder_config)
    assert [r["memory"] for r in memory.add("I like tea", user_id="alice")["results"]] == ["Likes tea"]
    assert memory_llm_connections(), "the memory model was asked over a kept-alive connection"
    memory.close()
    assert wait_until(lambda: not memory_llm_connections(), 2), f"still open after close: {memory_llm_connections()}"


def test_a_closed_memory_holds_no_connection_to_the_embedding_server(
        make_memory: Callable[..., Memory], fast_embedder_config: dict[str, Any], upstream: Any) -> None:
    """The OpenAI-compatible embedder talks to ``/v1/embeddings`` over a kept-alive connection;
    ``close`` lets it go too, not only the memory model's."""
    from tests.threads import wait_until

    def embedder_connections() -> list[Any]:
        ours = [r for r in list(upstream.requests) if r.path.endswith("/embeddings")]
        return [c for c in upstream.open_connections() if any(c.last is r for r in ours)]

    memory = make_memory(embedder=fast_embedder_config)
    memory.add("Likes tea", user_id="alice", infer=False)
    assert [r["memory"] for r in memory.search("tea", user_id="alice")["results"]] == ["Likes tea"]
    assert embedder_connections(), "the embedding server was asked over a kept-alive connection"
    memory.close()
    assert wait_until(lambda: not embedder_connections(), 2), f"still open after close: {embedder_connections()}"
