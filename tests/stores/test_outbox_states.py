"""The outbox tells each exchange's state (queued, learnt, dead), takes a replay once, and holds at
most ``outbox.max_queued`` exchanges / ``max_queued_mb``: on every backend (the ``memory``
fixture runs each test on SQLite, PostgreSQL, Qdrant and Qdrant with PostgreSQL records)."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from memlane import Memory, OutboxFullError
from memlane.config import OutboxConfig
from memlane.engine.learner import Learner
from memlane.errors import ExchangeTooLargeError
from memlane.testing import Reply, ScriptedUpstream
from tests.scenarios import restaurant_llm

SEED = "I love Indian food but I'm allergic to cheese."


def exchange(text: str = SEED, user: str = "alice") -> dict[str, Any]:
    return {"scope": {"user_id": user}, "messages": [{"role": "user", "content": text}], "model": "scripted-model"}


def learn_next(memory: Memory) -> None:
    item = memory.store.outbox.claim("test-worker", 60)
    assert item is not None
    memory.learn(item)


def test_an_exchange_is_queued_then_learnt_and_an_unknown_id_is_absent(memory: Memory, upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    first = memory.enqueue(exchange())
    nothing = memory.enqueue(exchange("hello there"))  # nothing to learn from it: learnt all the same
    assert {i: s.status for i, s in memory.exchange_states([first, nothing, "no-such-id"]).items()} == {first: "queued", nothing: "queued"}
    learn_next(memory)
    learn_next(memory)
    assert {i: s.status for i, s in memory.exchange_states([first, nothing]).items()} == {first: "learnt", nothing: "learnt"}
    assert sorted(r["memory"] for r in memory.get_all(user_id="alice")["results"]) == ["Is allergic to cheese", "Loves Indian food"]


def test_a_dead_exchange_is_told_with_its_error(memory: Memory, upstream: ScriptedUpstream) -> None:
    upstream.queue(Reply.error(404, "model 'scripted-model' does not exist", type="invalid_request_error", code="model_not_found"))
    item_id = memory.enqueue(exchange())
    learner = Learner(memory, OutboxConfig(workers=1, yield_seconds=0))
    assert learner.run_once()
    (state,) = memory.exchange_states([item_id]).values()
    assert state.status == "dead" and state.attempts == 1 and "does not exist" in (state.last_error or "")


def test_a_chat_names_its_exchange_before_it_is_queued(memory: Memory) -> None:
    """A stream's first chunk carries the id its exchange will be queued under."""
    named = "0b5c7b8e-0000-4000-8000-000000000001"
    assert memory.enqueue(exchange(), exchange_id=named) == named
    assert memory.enqueue(exchange(), exchange_id=named) == named, "the same id again queues nothing"
    assert memory.outbox_status()["pending"] == 1


def test_replays_with_one_idempotency_key_are_queued_and_learnt_once(memory: Memory, upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    ids = {memory.enqueue(exchange(), idempotency_key="client:abc") for _ in range(5)}
    assert len(ids) == 1 and memory.outbox_status()["pending"] == 1
    learn_next(memory)
    (item_id,) = ids
    assert memory.enqueue(exchange(), idempotency_key="client:abc") == item_id, "a replay after learning is still recognised"
    assert memory.outbox_status()["pending"] == 0
    assert memory.exchange_states([item_id])[item_id].status == "learnt"
    assert memory.enqueue(exchange(), idempotency_key="client:other") != item_id


def test_the_outbox_holds_at_most_max_queued_exchanges(make_memory: Callable[..., Memory]) -> None:
    memory = make_memory(outbox={"max_queued": 3})
    for n in range(3):
        memory.enqueue(exchange(f"turn {n}"))
    with pytest.raises(OutboxFullError, match="outbox.max_queued") as refused:
        memory.enqueue(exchange("one too many"))
    assert refused.value.http_status == 429
    assert memory.outbox_status()["pending"] == 3


def test_the_outbox_holds_at_most_max_queued_mb(make_memory: Callable[..., Memory]) -> None:
    memory = make_memory(outbox={"max_queued_mb": 0.01})  # 10,485 bytes
    memory.enqueue(exchange("x" * 6_000))
    with pytest.raises(OutboxFullError, match="outbox.max_queued_mb") as full:
        memory.enqueue(exchange("y" * 6_000))
    assert type(full.value) is OutboxFullError
    with pytest.raises(ExchangeTooLargeError, match="more than the outbox may hold") as huge:
        memory.enqueue(exchange("z" * 20_000))
    assert huge.value.http_status == 413
    assert memory.outbox_status()["pending"] == 1
