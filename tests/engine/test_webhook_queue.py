"""The webhook queue on every store: a memory change and its deliveries commit together (a
batch that rolls back queues nothing), each active webhook gets the events it subscribed to in
mem0's payload shape, and a deliverer's claims, backoff and dead letters follow the settings."""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest

from memlane import Memory
from memlane.errors import NotFoundError, ValidationError
from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream

PUBLIC = "https://93.184.216.34/hook"  # a public address: created without any DNS look-up


def pending(memory: Memory) -> list[dict[str, Any]]:
    return list(reversed(memory.webhook_deliveries(status="pending", limit=1000)))


def test_each_change_queues_mem0s_payload_for_each_subscribed_webhook(memory: Memory) -> None:
    every = memory.create_webhook(PUBLIC, "everything")
    adds = memory.create_webhook(PUBLIC, "adds only", ["memory:add"])  # mem0's older spelling
    assert adds["event_types"] == ["memory_add"] and every["event_types"] == ["memory_add", "memory_update", "memory_delete"]
    memory_id = memory.add("Likes tea", user_id="alice", infer=False)["results"][0]["id"]
    memory.update(memory_id, "Likes green tea")
    memory.delete(memory_id)
    queued = pending(memory)
    assert [(d["webhook_id"], d["event"]) for d in queued] == [
        (every["webhook_id"], "memory_add"), (adds["webhook_id"], "memory_add"),
        (every["webhook_id"], "memory_update"), (every["webhook_id"], "memory_delete")]
    add, _, update, delete = (d["payload"] for d in queued)
    assert add["event_details"] == {"id": memory_id, "data": {"memory": "Likes tea"}, "event": "ADD"}
    assert update["event_details"]["data"] == {"memory": "Likes green tea"} and update["previous_memory"] == "Likes tea"
    assert delete["event_details"]["event"] == "DELETE" and delete["memory"]["user_id"] == "alice"
    assert len({d["payload"]["idempotency_key"] for d in queued}) == 4 and all(d["id"] == d["payload"]["idempotency_key"] for d in queued)
    assert queued[0]["payload"]["event_id"] == queued[1]["payload"]["event_id"], "one event, one id, whichever webhook"


def test_a_change_that_rolls_back_queues_nothing_and_inactive_webhooks_get_nothing(memory: Memory) -> None:
    hook = memory.create_webhook(PUBLIC, "w")
    tea, coffee = (memory.add(t, user_id="alice", infer=False)["results"][0]["id"] for t in ("Likes tea", "Likes coffee"))
    assert len(pending(memory)) == 2
    with pytest.raises(ValidationError):
        memory.batch_update([{"memory_id": tea, "text": "Likes mint"}, {"memory_id": coffee, "text": "Likes mint"}])
    assert len(pending(memory)) == 2, "the rolled-back batch queued nothing: deliveries commit with the change"
    memory.batch_delete([tea, coffee])
    assert [d["event"] for d in pending(memory)] == ["memory_add", "memory_add", "memory_delete", "memory_delete"]
    memory.update_webhook(hook["webhook_id"], is_active=False)
    memory.add("Lives in Lisbon", user_id="alice", infer=False)
    memory.delete_all(user_id="alice")
    assert len(pending(memory)) == 4
    memory.update_webhook(hook["webhook_id"], is_active=True)
    memory.add("Lives in Porto", user_id="alice", infer=False)
    memory.delete_all(user_id="alice")  # a scope delete announces each memory it deletes
    assert [d["event"] for d in pending(memory)][-2:] == ["memory_add", "memory_delete"]


def test_what_the_learner_learns_is_announced(make_memory: Callable[..., Memory], upstream: ScriptedUpstream) -> None:
    def llm(req: ScriptedRequest) -> Reply:
        if req.stage == "extract":
            return Reply.json({"facts": ["Is allergic to cheese"]})
        return Reply.json({"memory": [{"id": "0", "text": "Is allergic to cheese", "event": "ADD"}]})

    upstream.handler = llm
    memory = make_memory()
    memory.create_webhook(PUBLIC, "w", ["memory_add"])
    memory.add([{"role": "user", "content": "I'm allergic to cheese"}], user_id="alice")
    assert [d["payload"]["event_details"]["data"]["memory"] for d in pending(memory)] == ["Is allergic to cheese"]


def test_claims_lease_one_delivery_per_webhook_and_attempts_back_off_then_die(make_memory: Callable[..., Memory]) -> None:
    memory = make_memory(server={"webhooks": {"max_attempts": 3, "retry_base_seconds": 0.001, "retry_max_seconds": 0.001}})
    first, second = memory.create_webhook(PUBLIC, "one"), memory.create_webhook(PUBLIC, "two")
    memory.add("Likes tea", user_id="alice", infer=False)
    memory.add("Likes coffee", user_id="alice", infer=False)
    a, b = memory.webhooks.claim("me"), memory.webhooks.claim("me")
    assert a is not None and b is not None and {a.webhook_id, b.webhook_id} == {first["webhook_id"], second["webhook_id"]}
    assert memory.webhooks.claim("me") is None, "each webhook has one delivery in flight at most"
    assert a.url == PUBLIC and a.secret == (first if a.webhook_id == first["webhook_id"] else second)["secret"]
    assert json.loads(a.body)["event_details"]["data"]["memory"] == "Likes tea", "oldest first"
    assert memory.webhooks.finish(a, status_code=204, error=None, duration_ms=3.0) == "delivered"
    assert memory.webhooks.finish(b, status_code=503, error="HTTP 503", duration_ms=3.0) == "pending"
    outcomes: list[str] = []
    for _ in range(100_000):  # (bounded: a bug fails the test instead of hanging it)
        if memory.webhooks.delivery(b.id)["status"] != "pending":
            break
        d = memory.webhooks.claim("me")
        if d is not None:  # (each webhook's oldest due delivery: b's first, then the coffee ones)
            outcomes.append(memory.webhooks.finish(d, status_code=None, error="ConnectError: refused", duration_ms=1.0)
                            if d.id == b.id else memory.webhooks.finish(d, status_code=200, error=None, duration_ms=1.0))
    dead = memory.webhooks.delivery(b.id)
    assert dead["status"] == "dead" and [x["status_code"] for x in dead["attempt_log"]] == [503, None, None]
    assert dead["last_error"] == "ConnectError: refused" and outcomes.count("dead") == 1
    assert memory.webhooks.requeue([b.id]) == 1 and memory.webhooks.delivery(b.id)["status"] == "pending"
    assert memory.webhooks.delivery(b.id)["attempts"] == 0
    c = memory.webhooks.claim("me")
    assert c is not None and memory.webhooks.release("me") == 1 and memory.webhooks.claim("other") is not None


def test_backoff_doubles_up_to_its_cap(memory: Memory) -> None:
    memory.webhooks.settings = memory.webhooks.settings.model_copy(update={"retry_base_seconds": 2.0, "retry_max_seconds": 10.0})
    waits = [memory.webhooks.backoff(n) for n in (1, 2, 3, 4, 9)]
    assert [round(w / c, 1) >= 0.8 and w <= c for w, c in zip(waits, (2, 4, 8, 10, 10))] == [True] * 5


def test_webhook_management_checks_what_it_is_given(memory: Memory) -> None:
    hook = memory.create_webhook(PUBLIC, "w")
    assert memory.get_webhooks()[0]["deliveries"] == {"pending": 0, "delivered": 0, "dead": 0}
    assert memory.update_webhook(hook["webhook_id"], name="renamed", event_types=["memory_delete"])["name"] == "renamed"
    with pytest.raises(ValidationError, match="event_types\\[0\\] is 'memory_categorize'; memlane sends memory_add"):
        memory.create_webhook(PUBLIC, "w", ["memory_categorize"])
    with pytest.raises(ValidationError, match="event_types must be a non-empty list"):
        memory.create_webhook(PUBLIC, "w", [])
    with pytest.raises(NotFoundError):
        memory.update_webhook("wh_nope", name="x")
    assert memory.delete_webhook(hook["webhook_id"]) == {"message": "Webhook deleted successfully"}
    assert memory.get_webhooks() == []
    memory.add("Likes tea", user_id="alice", infer=False)
    assert pending(memory) == [], "a deleted webhook gets nothing"
    assert json.loads(json.dumps(memory.get_webhooks())) == []
