"""The limits on what becomes a memory hold on every way into the engine (add with a string or a
messages list, infer or not, update, import, exchanges), on every store: the server's routes, the
clients and the CLI all come through these."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from memlane import Memory
from memlane.errors import ValidationError

LONG = "x" * 20_001  # server.max_memory_chars is 20,000


def test_a_memory_longer_than_the_limit_is_refused_whichever_way_it_comes(memory: Memory) -> None:
    kept = memory.add("Likes tea", user_id="alice", infer=False)["results"][0]["id"]
    ways: dict[str, Callable[[], Any]] = {
        "add, text": lambda: memory.add(LONG, user_id="alice", infer=False),
        "add, messages list": lambda: memory.add([{"role": "user", "content": "hi"}, {"role": "user", "content": LONG}],
                                                 user_id="alice", infer=False),
        "add, content parts": lambda: memory.add([{"role": "user", "content": [{"type": "text", "text": LONG}]}],
                                                 user_id="alice", infer=False),
        "update": lambda: memory.update(kept, LONG),
        "import": lambda: memory.import_records([{"memory": LONG, "user_id": "alice"}]),
    }
    for way, call in ways.items():
        with pytest.raises(ValidationError, match="at most 20000") as refused:
            call()
        assert refused.value.code == "text_too_long", way
    assert [m["memory"] for m in memory.get_all(user_id="alice")["results"]] == ["Likes tea"]


def test_the_limit_is_the_configs(make_memory: Callable[..., Memory]) -> None:
    memory = make_memory(server={"max_memory_chars": 100})
    with pytest.raises(ValidationError, match="at most 100"):
        memory.add("y" * 101, user_id="alice", infer=False)
    assert memory.add("y" * 100, user_id="alice", infer=False)["results"]


def test_an_add_that_fact_extraction_could_not_read_whole_is_refused_not_cut(memory: Memory) -> None:
    capacity = memory.config.inference.max_input_chars * memory.config.inference.max_chunks
    with pytest.raises(ValidationError, match=f"reads at most {capacity}"):
        memory.add([{"role": "user", "content": "z" * 15_000}] * 4, user_id="alice")  # 60,000 > 48,000
    assert memory.get_all(user_id="alice")["results"] == []


@pytest.mark.parametrize("where", ["text", "metadata value", "metadata key", "query", "import", "exchange"])
def test_a_lone_surrogate_is_a_validation_error_never_an_encoder_crash(memory: Memory, where: str) -> None:
    calls: dict[str, Callable[[], Any]] = {
        "text": lambda: memory.add("likes \ud800 tea", user_id="alice", infer=False),
        "metadata value": lambda: memory.add("likes tea", user_id="alice", infer=False, metadata={"k": "\udc00"}),
        "metadata key": lambda: memory.add("likes tea", user_id="alice", infer=False, metadata={"\ud800": 1}),
        "query": lambda: memory.search("tea \ud800", user_id="alice"),
        "import": lambda: memory.import_records([{"memory": "tea", "user_id": "alice", "history": [{"new_memory": "\ud800"}]}]),
        "exchange": lambda: memory.enqueue({"scope": {"user_id": "alice"}, "messages": [{"role": "user", "content": "\ud800"}]}),
    }
    with pytest.raises(ValidationError, match="lone surrogate"):
        calls[where]()
    assert memory.get_all(user_id="alice")["results"] == [] and memory.outbox_status()["pending"] == 0


def test_metadata_is_held_to_the_servers_size_on_every_way_in(memory: Memory) -> None:
    big = {"blob": "m" * 17_000}  # server.max_metadata_bytes is 16 KiB
    for call in (lambda: memory.add("tea", user_id="alice", infer=False, metadata=big),
                 lambda: memory.import_records([{"memory": "tea", "user_id": "alice", "metadata": big}]),
                 lambda: memory.enqueue({"scope": {"user_id": "alice"}, "messages": [{"role": "user", "content": "hi"}], "metadata": big})):
        with pytest.raises(ValidationError, match="larger than 16384 bytes"):
            call()


def test_pages_read_only_their_rows_and_count_the_rest(memory: Memory) -> None:
    memory.add([f"fact number {i}" for i in range(7)], user_id="alice", infer=False)
    memory.add("bob's fact", user_id="bob", infer=False)
    pages = [memory.get_page(user_id="alice", page=n, page_size=3, oldest_first=True) for n in (1, 2, 3, 4)]
    assert [p["count"] for p in pages] == [7, 7, 7, 7]
    assert [[m["memory"] for m in p["results"]] for p in pages] == [
        ["fact number 0", "fact number 1", "fact number 2"], ["fact number 3", "fact number 4", "fact number 5"], ["fact number 6"], []]
    newest = memory.get_page(user_id="alice", page=1, page_size=2)["results"]
    assert [m["memory"] for m in newest] == [m["memory"] for m in memory.get_all(user_id="alice", limit=2)["results"]]
    with pytest.raises(ValidationError, match="page_size must be a positive integer"):
        memory.get_page(user_id="alice", page=1, page_size=0)
