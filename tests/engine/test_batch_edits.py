"""Batch edits on every store: up to 1,000 memories in one call, one transaction, a history
event for each, and all or nothing: one bad item (an unknown id, a text its scope already
holds, more than 1,000 items) changes nothing at all."""

from __future__ import annotations

import pytest

from memlane import Memory
from memlane.errors import ValidationError


def added(memory: Memory, *texts: str, user_id: str = "alice") -> list[str]:
    return [memory.add(t, user_id=user_id, infer=False)["results"][0]["id"] for t in texts]


def texts(memory: Memory, user_id: str = "alice") -> set[str]:
    return {m["memory"] for m in memory.get_all(user_id=user_id)["results"]}


def test_batch_update_changes_text_and_metadata_with_history_for_each(memory: Memory) -> None:
    tea, coffee, lisbon = added(memory, "Likes tea", "Likes coffee", "Lives in Lisbon")
    done = memory.batch_update([
        {"memory_id": tea, "text": "Likes green tea"},
        {"memory_id": coffee, "metadata": {"category": "drinks"}},
        {"memory_id": lisbon, "text": "Lives in Porto", "metadata": {"category": "home"}},
    ])
    assert done["message"] == "Successfully updated 3 memories"
    assert [(r["id"], r["event"], r["memory"], r["previous_memory"]) for r in done["results"]] == [
        (tea, "UPDATE", "Likes green tea", "Likes tea"), (coffee, "UPDATE", "Likes coffee", "Likes coffee"),
        (lisbon, "UPDATE", "Lives in Porto", "Lives in Lisbon")]
    assert memory.get(coffee)["metadata"] == {"category": "drinks"} and memory.get(coffee)["memory"] == "Likes coffee"
    assert memory.get(lisbon)["metadata"] == {"category": "home"}
    for memory_id in (tea, coffee, lisbon):
        assert [e["event"] for e in memory.history(memory_id)] == ["ADD", "UPDATE"]
    hits = memory.search("green tea", user_id="alice", limit=1)["results"]
    assert hits[0]["memory"] == "Likes green tea", "the new text is what search finds (re-embedded, re-indexed)"


def test_batch_delete_removes_each_and_keeps_their_history(memory: Memory) -> None:
    tea, coffee, _ = added(memory, "Likes tea", "Likes coffee", "Lives in Lisbon")
    done = memory.batch_delete([{"memory_id": tea}, coffee])  # an item may be the id itself
    assert done["message"] == "Successfully deleted 2 memories"
    assert {(r["id"], r["event"]) for r in done["results"]} == {(tea, "DELETE"), (coffee, "DELETE")}
    assert texts(memory) == {"Lives in Lisbon"}
    assert [e["event"] for e in memory.history(tea)] == ["ADD", "DELETE"]


def test_a_batch_across_scopes_is_one_call(memory: Memory) -> None:
    (alice_tea,) = added(memory, "Likes tea")
    (bob_tea,) = added(memory, "Likes tea", user_id="bob")
    memory.batch_update([{"memory_id": alice_tea, "text": "Likes black tea"}, {"memory_id": bob_tea, "text": "Likes mint tea"}])
    assert texts(memory) == {"Likes black tea"} and texts(memory, "bob") == {"Likes mint tea"}
    memory.batch_delete([{"memory_id": alice_tea}, {"memory_id": bob_tea}])
    assert texts(memory) == set() and texts(memory, "bob") == set()


def test_an_unknown_id_refuses_the_whole_batch_naming_it(memory: Memory) -> None:
    tea, coffee = added(memory, "Likes tea", "Likes coffee")
    with pytest.raises(ValidationError, match=r"memories\[1\]\.memory_id 'nope' is not a memory here.*nothing was changed") as info:
        memory.batch_update([{"memory_id": tea, "text": "Likes green tea"}, {"memory_id": "nope", "text": "x"}])
    assert info.value.param == "memories[1].memory_id"
    with pytest.raises(ValidationError, match=r"and 1 more: 'gone'"):
        memory.batch_delete([{"memory_id": coffee}, {"memory_id": "nope"}, {"memory_id": "gone"}])
    assert texts(memory) == {"Likes tea", "Likes coffee"}, "neither batch changed anything"
    assert [e["event"] for e in memory.history(tea)] == ["ADD"]


def test_a_text_the_scope_already_holds_rolls_back_the_earlier_items_too(memory: Memory) -> None:
    tea, coffee = added(memory, "Likes tea", "Likes coffee")
    with pytest.raises(ValidationError, match="already holds another memory with the text 'Likes green tea'") as info:
        memory.batch_update([{"memory_id": tea, "text": "Likes green tea"}, {"memory_id": coffee, "text": "Likes green tea"}])
    assert info.value.code == "duplicate_text"
    assert texts(memory) == {"Likes tea", "Likes coffee"}, "the first item's change was rolled back with the second"
    assert [e["event"] for e in memory.history(tea)] == ["ADD"]
    with pytest.raises(ValidationError, match="already holds another memory"):
        memory.batch_update([{"memory_id": tea, "text": "likes COFFEE"}])  # the same text up to case and spaces
    assert texts(memory) == {"Likes tea", "Likes coffee"}


@pytest.mark.parametrize("batch, message", [
    ([], r"memories is empty: a batch update takes 1 to 1000 memories"),
    ({"memory_id": "x"}, r"memories must be a list"),
    ([{"text": "no id"}], r"memories\[0\]\.memory_id must be a non-empty string"),
    (["just-an-id"], r"memories\[0\] must be an object"),
    ([{"memory_id": "a", "text": "x"}, {"memory_id": "a", "text": "y"}], r"memories\[1\]\.memory_id 'a' is also memories\[0\]'s"),
    ([{"memory_id": "a"}], r"memories\[0\]: give text and/or metadata"),
    ([{"memory_id": "a", "text": "  "}], r"memories\[0\]\.text must not be blank"),
    ([{"memory_id": "a", "metadata": "x"}], r"memories\[0\]\.metadata must be an object"),
])
def test_a_malformed_batch_is_refused_before_anything_is_read(memory: Memory, batch: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        memory.batch_update(batch)  # type: ignore[arg-type]


def test_more_than_a_thousand_is_refused_naming_the_count_and_a_thousand_is_one_call(memory: Memory) -> None:
    ids = [r["id"] for r in memory.add([{"role": "user", "content": f"Fact number {i}"} for i in range(1000)], user_id="alice",
                                       infer=False)["results"]]
    with pytest.raises(ValidationError, match="memories holds 1001 items; a batch delete takes at most 1000") as info:
        memory.batch_delete([{"memory_id": i} for i in ids] + [{"memory_id": ids[0] + "x"}])
    assert info.value.code == "batch_too_large"
    assert len(memory.get_all(user_id="alice", limit=1000)["results"]) == 1000
    done = memory.batch_update([{"memory_id": i, "metadata": {"batch": 1}} for i in ids])
    assert len(done["results"]) == 1000
    assert memory.batch_delete([{"memory_id": i} for i in ids])["message"] == "Successfully deleted 1000 memories"
    assert memory.get_all(user_id="alice")["results"] == []


def test_the_async_engine_has_them_too(memory: Memory) -> None:
    import asyncio

    from memlane import AsyncMemory

    (memory_id,) = added(memory, "Likes tea")
    engine = AsyncMemory(memory=memory)
    done = asyncio.run(engine.batch_update([{"memory_id": memory_id, "text": "Likes mint tea"}]))
    assert done["results"][0]["memory"] == "Likes mint tea"
    assert asyncio.run(engine.batch_delete([memory_id]))["message"] == "Successfully deleted 1 memories"
