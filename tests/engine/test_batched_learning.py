"""Batched learning on every backend: several waiting exchanges of one scope are learnt in one
extraction call, one reconcile call and one commit (``outbox.batch_size``), with the memories,
history, metadata and timestamps that learning them one at a time gives; the outbox hands out
one scope's items at a time, and a batch that fails or loses its lease learns nothing twice."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from memlane import Memory
from memlane.config import OutboxConfig
from memlane.engine import inference
from memlane.engine.learner import Learner
from memlane.stores.outbox import LeaseLost
from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.threads import wait_until

FAST = OutboxConfig(retry_base_seconds=0.05, retry_max_seconds=0.1, poll_seconds=0.05, workers=1)
#: when the fixed conversation happened (memlane's stored form of a timestamp)
SAID_AT = "2024-05-01T10:00:00.000000+00:00"
SEEDS = ["Lives in Boston", "Has a beagle named Pepper"]
#: (user, assistant, the facts the scripted model extracts from that exchange)
CONVERSATION = [
    ("I moved to Denver last month.", "Denver is lovely! The Red Rocks trails are worth a visit.", ["Lives in Denver"]),
    # "Likes matcha" is the assistant's word: the fact check drops it as a suggestion
    ("I drink green tea every morning.", "Matcha is a great choice too.", ["Drinks green tea every morning", "Likes matcha"]),
    ("My beagle Pepper turned five.", "Happy birthday, Pepper!", ["Has a beagle named Pepper", "Pepper is five years old"]),
    # the answer to the user's question, dropped; checked against the whole batch instead of this
    # exchange alone it would be kept (the last exchange's user says "chickpea curry")
    ("What should I cook tonight?", "How about a chickpea curry?", ["Likes chickpea curry"]),
    ("I started learning the cello.", "That's a beautiful instrument.", ["Is learning the cello"]),
    ("The chickpea curry was delicious, I'll cook it again. I still drink green tea every morning.", "Glad you liked it!",
     ["Cooks chickpea curry", "Drinks green tea every morning"]),
]
FACTS_OF = {user: facts for user, _, facts in CONVERSATION}


def exchange(user: str, text: str, assistant: str | None = None, **payload: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": text}, *([{"role": "assistant", "content": assistant}] if assistant else [])]
    return {"scope": {"user_id": user}, "messages": messages, "metadata": {}, "model": "scripted-model", **payload}


def answer(per_exchange: list[list[str]], **kw: Any) -> Reply:
    """The extraction answer: one exchange's facts, or each exchange's of a batch."""
    if len(per_exchange) == 1:
        return Reply.json({"facts": per_exchange[0]}, **kw)
    return Reply.json({"exchanges": [{"exchange": n, "facts": facts} for n, facts in enumerate(per_exchange, 1)]}, **kw)


def first_user_turns(req: ScriptedRequest) -> list[str]:
    return [next(text for role, text in turns if role == "user") for turns in req.exchanges]


def reconciled(req: ScriptedRequest) -> Reply:
    """A new fact the scope already holds is NONE, a new "Lives in" updates the old one, anything else is ADD."""
    payload = req.reconcile_payload
    entries = []
    for fact in payload["new_facts"]:
        same = next((m for m in payload["existing_memories"] if m["text"] == fact), None)
        moved = next((m for m in payload["existing_memories"] if fact.startswith("Lives in") and m["text"].startswith("Lives in")), None)
        if same is not None:
            entries.append({"id": same["id"], "text": fact, "event": "NONE", "old_memory": ""})
        elif moved is not None:
            entries.append({"id": moved["id"], "text": fact, "event": "UPDATE", "old_memory": moved["text"]})
        else:
            entries.append({"id": "new", "text": fact, "event": "ADD", "old_memory": ""})
    return Reply.json({"memory": entries})


def conversation_model(req: ScriptedRequest) -> Reply:
    """The scripted memory model of the fixed conversation: each exchange's facts by its user turn."""
    if req.stage == "extract":
        return answer([FACTS_OF[text] for text in first_user_turns(req)])
    return reconciled(req)


def said_facts(req: ScriptedRequest) -> Reply:
    """Each exchange's first user turn is its one fact."""
    if req.stage == "extract":
        return answer([[text] for text in first_user_turns(req)])
    return reconciled(req)


@pytest.fixture
def engine(make_memory: Callable[..., Memory], fast_embedder_config: dict[str, Any], tmp_path: Path) -> Callable[..., Memory]:
    """An engine on a store of its own (``name``), with the scripted server's fast embeddings."""
    return lambda name="memlane", **overrides: make_memory(tmp_path / f"{name}.db", embedder=fast_embedder_config, **overrides)


def learn_everything(memory: Memory, **settings: Any) -> dict[str, Any]:
    """Run a learner until the outbox is drained; its status then."""
    learner = Learner(memory, FAST.model_copy(update=settings))
    try:
        assert learner.flush(timeout=60)
        return learner.status()
    finally:
        learner.stop()


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def memories(memory: Memory, user: str = "alice") -> list[str]:
    return sorted(r["memory"] for r in memory.get_all(user_id=user)["results"])


def snapshot(memory: Memory) -> list[tuple[Any, ...]]:
    """The scope's memories in the order they were said, each with its metadata, its time and
    its history (an UPDATE's time is when it was learnt, so only an ADD's time is compared)."""
    return [(r["memory"], r["metadata"], r["created_at"],
             [(h["event"], h["old_memory"], h["new_memory"], h["created_at"] if h["event"] == "ADD" else None)
              for h in memory.history(r["id"])])
            for r in memory.get_all(user_id="alice", oldest_first=True)["results"]]


def put_conversation(memory: Memory) -> list[str]:
    memory.add([{"role": "user", "content": seed} for seed in SEEDS], user_id="alice", infer=False, metadata={"source": "seed"},
               timestamp="2024-04-01T09:00:00Z")
    return [memory.store.outbox.put(exchange("alice", user, assistant, metadata={"session": "s1"}, timestamp=SAID_AT))
            for user, assistant, _ in CONVERSATION]


def test_a_batch_learns_what_one_at_a_time_learns_with_fewer_llm_calls(engine: Callable[..., Memory],
                                                                      upstream: ScriptedUpstream) -> None:
    """The fixed conversation of six exchanges, learnt one at a time and as one batch: the same
    memories in the same order, with the same metadata, times and history, the same facts
    dropped (each checked against its own exchange), for 2 LLM calls instead of 11."""
    upstream.handler = conversation_model
    one_at_a_time, batched = engine("one-at-a-time"), engine("batched")
    put_conversation(one_at_a_time)
    alone = learn_everything(one_at_a_time, batch_size=1)
    single_requests = len(upstream.chat_requests("extract"))
    ids = put_conversation(batched)
    together = learn_everything(batched, batch_size=8)

    assert snapshot(batched) == snapshot(one_at_a_time)
    assert [r[0] for r in snapshot(batched)] == ["Lives in Denver", "Has a beagle named Pepper", "Drinks green tea every morning",
                                                 "Pepper is five years old", "Is learning the cello", "Cooks chickpea curry"]
    denver = snapshot(batched)[0]
    assert denver[1] == {"role": "user", "source": "seed", "session": "s1"} and [h[0] for h in denver[3]] == ["ADD", "UPDATE"]
    assert all(r[1] == {"session": "s1"} and r[2] == SAID_AT for r in snapshot(batched)[2:]), "each memory keeps its exchange's"
    assert together["dropped"] == alone["dropped"] == {"suggestion": 1, "answer": 1}
    assert together["events"] == alone["events"]
    assert (alone["llm_calls"], alone["exchanges_learnt"]) == (11, 6), "6 extraction calls, 5 reconcile calls"
    assert (together["llm_calls"], together["exchanges_learnt"], together["batches"]) == (2, 6, 1), "one of each"
    (request,) = upstream.chat_requests("extract")[single_requests:]
    assert first_user_turns(request) == [user for user, _, _ in CONVERSATION], "each exchange apart, in order"
    assert request.exchanges[1] == [("user", CONVERSATION[1][0]), ("assistant", CONVERSATION[1][1])]
    assert {s.status for s in batched.exchange_states(ids).values()} == {"learnt"}


def test_every_item_of_a_batch_leaves_the_outbox_in_the_commit_that_applies_it(engine: Callable[..., Memory],
                                                                                upstream: ScriptedUpstream) -> None:
    memory = engine()
    memory.add("Likes coffee", user_id="alice", infer=False)  # so that the batch is reconciled
    seen_while_reconciling: list[dict[str, Any]] = []

    def model(req: ScriptedRequest) -> Reply:
        if req.stage == "reconcile":
            seen_while_reconciling.append(memory.outbox_status())
        return said_facts(req)

    upstream.handler = model
    ids = [memory.store.outbox.put(exchange("alice", text)) for text in ("Likes tea", "Plays chess", "Keeps bees")]
    items = memory.store.outbox.claim_batch("worker", 60, 8)
    assert [i.id for i in items] == ids
    learnt = memory.learn_batch(items)
    assert seen_while_reconciling[0]["pending"] == 3 and seen_while_reconciling[0]["in_progress"] == 3
    assert memory.outbox_status()["pending"] == 0 and {s.status for s in memory.exchange_states(ids).values()} == {"learnt"}
    assert [[a.record.memory for a in one.applied] for one in learnt] == [["Likes tea"], ["Plays chess"], ["Keeps bees"]]
    assert memories(memory) == ["Keeps bees", "Likes coffee", "Likes tea", "Plays chess"]


def test_a_batch_whose_lease_was_taken_over_learns_nothing_twice(engine: Callable[..., Memory], upstream: ScriptedUpstream) -> None:
    """A worker stalls past its lease; another takes over the scope's first item: the first
    worker's commit then writes nothing at all (not even the items it still held), gives its
    items back, and every exchange is learnt once."""
    memory = engine()
    upstream.handler = said_facts
    outbox = memory.store.outbox
    ids = [outbox.put(exchange("alice", text)) for text in ("Likes tea", "Plays chess", "Keeps bees")]
    mine = outbox.claim_batch("worker-a", 0.05, 8)
    time.sleep(0.1)  # worker a's lease runs out
    theirs = outbox.claim_batch("worker-b", 60, 1)
    assert [i.id for i in theirs] == ids[:1]
    with pytest.raises(LeaseLost):
        memory.learn_batch(mine)
    assert memories(memory) == [] and outbox.stats()["pending"] == 3, "nothing of the batch was written"
    outbox.release(mine)  # what the learner does: the items worker a still held are free again
    memory.learn_batch(theirs)
    rest = outbox.claim_batch("worker-a", 60, 8)
    assert [i.id for i in rest] == ids[1:]
    memory.learn_batch(rest)
    assert memories(memory) == ["Keeps bees", "Likes tea", "Plays chess"] and outbox.stats()["pending"] == 0
    for record in memory.get_all(user_id="alice")["results"]:
        assert [h["event"] for h in memory.history(record["id"])] == ["ADD"]


def test_a_batch_whose_reconcile_answer_is_malformed_is_learnt_one_at_a_time(engine: Callable[..., Memory],
                                                                             upstream: ScriptedUpstream) -> None:
    memory = engine()
    memory.add("Likes coffee", user_id="alice", infer=False)

    def model(req: ScriptedRequest) -> Reply:
        if req.stage == "repair" or (req.stage == "reconcile" and len(req.reconcile_payload["new_facts"]) > 1):
            return Reply.text("Sure! I added them all.")  # not the contract's JSON, twice for the batch
        return said_facts(req)

    upstream.handler = model
    ids = [memory.store.outbox.put(exchange("alice", text)) for text in ("Likes tea", "Plays chess", "Keeps bees")]
    status = learn_everything(memory)
    assert memories(memory) == ["Keeps bees", "Likes coffee", "Likes tea", "Plays chess"]
    for record in memory.get_all(user_id="alice")["results"]:
        assert [h["event"] for h in memory.history(record["id"])] == ["ADD"], "learnt once each"
    assert {s.status for s in memory.exchange_states(ids).values()} == {"learnt"} and status["pending"] == 0
    assert (status["batch_fallbacks"], status["failed_attempts"], status["dead"], status["exchanges_learnt"]) == (1, 0, 0, 3)
    assert status["llm_calls"] == 3 + 3 * 2, "the batch's extraction, reconcile and repair; then each exchange's two"


def test_one_exchange_that_fails_costs_the_others_of_its_batch_no_attempt(engine: Callable[..., Memory],
                                                                          upstream: ScriptedUpstream) -> None:
    memory = engine()

    def model(req: ScriptedRequest) -> Reply:
        if req.stage == "extract" and any("poison" in text for text in first_user_turns(req)):
            return Reply.error(503, "overloaded")
        return said_facts(req)

    upstream.handler = model
    for text in ("Likes tea", "A poison pill", "Plays chess"):
        memory.store.outbox.put(exchange("alice", text))
    status = learn_everything(memory, max_attempts=2)
    assert memories(memory) == ["Likes tea", "Plays chess"]
    (dead,) = memory.dead_exchanges()
    assert dead.payload["messages"][0]["content"] == "A poison pill" and dead.attempts == 2
    assert (status["batch_fallbacks"], status["failed_attempts"], status["exchanges_learnt"]) == (1, 2, 2)


def test_two_scopes_never_share_a_batch(engine: Callable[..., Memory], upstream: ScriptedUpstream) -> None:
    memory = engine()
    upstream.handler = said_facts
    for user, n in (("alice", 1), ("bob", 1), ("alice", 2), ("bob", 2), ("alice", 3)):
        memory.store.outbox.put(exchange(user, f"Likes {user} thing {n}"))
    status = learn_everything(memory, workers=2)
    asked = sorted(first_user_turns(r) for r in upstream.chat_requests("extract"))
    assert asked == [[f"Likes alice thing {n}" for n in (1, 2, 3)], [f"Likes bob thing {n}" for n in (1, 2)]]
    assert memories(memory, "alice") == [f"Likes alice thing {n}" for n in (1, 2, 3)]
    assert memories(memory, "bob") == ["Likes bob thing 1", "Likes bob thing 2"]
    assert (status["batches"], status["llm_calls"], status["exchanges_learnt"]) == (2, 2, 5)


def test_the_outbox_hands_out_one_scopes_items_oldest_first_and_a_failed_one_alone(engine: Callable[..., Memory]) -> None:
    outbox = engine().store.outbox
    a1, b1, a2, a3, a4 = (outbox.put(exchange(user, text)) for user, text in
                          (("alice", "1"), ("bob", "1"), ("alice", "2"), ("alice", "3"), ("alice", "4")))
    first = outbox.claim_batch("worker", 60, 3)
    assert [i.id for i in first] == [a1, a2, a3], "one scope, oldest first, at most the limit"
    assert [i.id for i in outbox.claim_batch("worker", 60, 8)] == [b1]
    assert outbox.claim_batch("worker", 60, 8) == [], "alice's scope is leased (a4 waits), bob's too"
    outbox.done(first)
    outbox.retry(a4, "failed", 0.0)  # a4 failed once: it may be what failed a batch
    a5 = outbox.put(exchange("alice", "5"))
    (failed,) = outbox.claim_batch("worker", 60, 8)
    assert (failed.id, failed.attempts) == (a4, 1), "a failed item comes alone"
    assert outbox.claim_batch("worker", 60, 8) == [] and outbox.claim("worker", 60) is None, "a5 waits for a4's scope"
    assert {s.status for s in outbox.states([a1, a2, a3]).values()} == {"learnt"} and outbox.stats()["pending"] == 3
    outbox.done(failed)
    assert [i.id for i in outbox.claim_batch("worker", 60, 8)] == [a5]


def test_released_items_are_claimable_at_once_without_an_attempt(engine: Callable[..., Memory]) -> None:
    outbox = engine().store.outbox
    ids = [outbox.put(exchange("alice", str(n))) for n in range(3)]
    items = outbox.claim_batch("worker", 60, 8)
    outbox.release(items[1:])
    assert outbox.claim_batch("other", 60, 8) == [], "the scope is still leased by its first item"
    outbox.done(items[0])
    again = outbox.claim_batch("other", 60, 8)
    assert [(i.id, i.attempts) for i in again] == [(ids[1], 0), (ids[2], 0)]
    with pytest.raises(LeaseLost):
        outbox.done(items[1:])  # the first worker's claim on them is gone
    assert outbox.stats()["pending"] == 2


def test_a_batch_stops_growing_before_its_transcript_would_be_chunked(engine: Callable[..., Memory],
                                                                     upstream: ScriptedUpstream) -> None:
    memory = engine(inference={"max_input_chars": 500})
    upstream.handler = said_facts
    texts = [f"Likes thing number {n} " + "and more words about it " * 7 for n in range(5)]  # ~200 characters each: two fit in 500
    for text in texts:
        memory.store.outbox.put(exchange("alice", text.strip()))
    status = learn_everything(memory)
    requests = upstream.chat_requests("extract")
    assert [len(r.exchanges) for r in requests] == [2, 2, 1]
    for r in requests:
        assert len(r.last_user_text.split("\n\n", 1)[1]) <= 500
    assert memories(memory) == sorted(t.strip() for t in texts) and status["exchanges_learnt"] == 5


def test_exchanges_with_other_metadata_timestamps_or_models_are_not_learnt_together(engine: Callable[..., Memory],
                                                                                     upstream: ScriptedUpstream) -> None:
    """Everything a memory keeps of its exchange stays its own: a batch holds only exchanges that
    share their metadata, timestamp and memory model (the chat's, as the config names none)."""
    memory = engine(llm={"provider": "openai", "config": {"base_url": upstream.url, "api_key": "k", "max_retries": 0}})
    upstream.handler = said_facts
    later = "2024-06-01T08:00:00.000000+00:00"
    said = [("Likes tea", {"s": 1}, None, "model-a"), ("Plays chess", {"s": 1}, None, "model-a"),
            ("Keeps bees", {"s": 2}, None, "model-a"), ("Sings in a choir", {"s": 2}, later, "model-a"),
            ("Rides a bike", {"s": 2}, later, "model-b")]
    for text, meta, when, model in said:
        memory.store.outbox.put(exchange("alice", text, metadata=meta, timestamp=when, model=model))
    learn_everything(memory)
    requests = upstream.chat_requests("extract")
    assert [(first_user_turns(r), r.json["model"]) for r in requests] == [
        (["Likes tea", "Plays chess"], "model-a"), (["Keeps bees"], "model-a"), (["Sings in a choir"], "model-a"),
        (["Rides a bike"], "model-b")]
    kept = {r["memory"]: r for r in memory.get_all(user_id="alice")["results"]}
    for text, meta, when, _ in said:
        assert kept[text]["metadata"] == meta and (when is None or kept[text]["created_at"] == when)


def test_a_model_that_answers_one_list_for_a_batch_gets_each_exchange_alone(engine: Callable[..., Memory],
                                                                           upstream: ScriptedUpstream) -> None:
    """Which exchange a fact came from (whose turns it is checked against) must be known: one
    plain list for several exchanges is not guessed at, and is not sent back for repair."""
    memory = engine()
    upstream.handler = lambda req: Reply.json({"facts": first_user_turns(req)}) if req.stage == "extract" else reconciled(req)
    for text in ("Likes tea", "Plays chess"):
        memory.store.outbox.put(exchange("alice", text))
    status = learn_everything(memory)
    assert memories(memory) == ["Likes tea", "Plays chess"]
    assert [len(r.exchanges) for r in upstream.chat_requests("extract")] == [2, 1, 1] and not upstream.chat_requests("repair")
    assert (status["batch_fallbacks"], status["failed_attempts"]) == (1, 0)
    assert status["llm_calls"] == 1 + 1 + 2, "the batch's call; then tea's extraction, chess's extraction and reconcile"


def test_batch_size_one_learns_one_exchange_per_call(engine: Callable[..., Memory], upstream: ScriptedUpstream) -> None:
    memory = engine()
    upstream.handler = said_facts
    for text in ("Likes tea", "Plays chess", "Keeps bees"):
        memory.store.outbox.put(exchange("alice", text))
    status = learn_everything(memory, batch_size=1)
    assert [len(r.exchanges) for r in upstream.chat_requests("extract")] == [1, 1, 1]
    assert (status["batches"], status["exchanges_learnt"]) == (0, 3)
    assert status["llm_calls"] == 1 + 2 + 2, "the first exchange needs no reconcile (nothing stored yet), the others do"


@pytest.mark.parametrize("raw, facts", [
    ('{"exchanges": [{"exchange": 2, "facts": ["Likes tea"]}, {"exchange": 1, "facts": []}]}', [[], ["Likes tea"], []]),
    ('{"exchanges": [{"exchange": "3", "facts": [{"fact": "Plays chess"}]}]}', [[], [], ["Plays chess"]]),
    ('{"exchanges": [{"facts": ["a"]}, {"facts": []}, {"facts": ["b", "b"]}]}', [["a"], [], ["b"]]),
    ('{"facts": []}', [[], [], []]),
    ('```json\n{"exchanges": []}\n```', [[], [], []]),
])
def test_a_batch_answer_gives_each_exchanges_facts(raw: str, facts: list[list[str]]) -> None:
    assert inference.parse_batch_facts(raw, 3) == facts


@pytest.mark.parametrize("raw, error", [
    ('{"exchanges": [{"exchange": 4, "facts": []}]}', "must be a number from 1 to 3"),
    ('{"exchanges": [{"exchange": true, "facts": []}]}', "must be a number from 1 to 3"),
    ('{"exchanges": [{"exchange": 1, "facts": "Likes tea"}]}', "exchanges[0].facts is not a list"),
    ('{"exchanges": {"1": []}}', 'no "exchanges" list'),
    ('{"memory": []}', 'no "exchanges" list'),
])
def test_a_batch_answer_that_is_not_the_contract_is_refused(raw: str, error: str) -> None:
    with pytest.raises(ValueError, match=error.replace("[", r"\[").replace("]", r"\]")):
        inference.parse_batch_facts(raw, 3)


def test_one_plain_list_of_facts_for_a_batch_is_unattributed() -> None:
    with pytest.raises(inference.UnattributedFacts):
        inference.parse_batch_facts(json.dumps({"facts": ["Likes tea"]}), 2)


def test_the_servers_metrics_count_learnings_llm_calls(make_server: Callable[..., LiveServer], upstream: ScriptedUpstream) -> None:
    upstream.handler = lambda req: Reply.text("Noted!") if req.stage == "chat" else said_facts(req)
    server = make_server()
    sdk = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    for text in ("Likes tea", "Plays chess", "Keeps bees"):
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": text}], extra_body={"user_id": "alice"})

    def counters() -> dict[str, float]:
        return {name: value for name, labels, value in samples(httpx.get(server.url + "/metrics").text)
                if labels.get("project") == "default"}

    assert wait_until(lambda: counters().get("memlane_learned_total") == 3, 30)
    memory_calls = [r for r in upstream.chat_requests() if r.stage in ("extract", "reconcile", "repair")]
    assert counters()["memlane_learning_llm_calls_total"] == len(memory_calls) >= 1


def learnt_without_the_batch_wait(memory: Memory, settings: OutboxConfig, text: str, assistant: str | None = None) -> bool:
    """Whether ``text``'s exchange, enqueued alone for a learner that holds short claims back
    for 10 s (``batch_wait_seconds``, nobody flushing), is learnt well within those 10 s."""
    learner = Learner(memory, settings.model_copy(update={"batch_wait_seconds": 10.0}))
    learner.start()
    try:
        memory.store.outbox.put(exchange("alice", text, assistant))
        learner.notify()
        return wait_until(lambda: memories(memory) == [text], 7)
    finally:
        learner.stop()


def test_an_exchange_that_leaves_no_room_for_another_is_not_held_back(engine: Callable[..., Memory],
                                                                       upstream: ScriptedUpstream) -> None:
    """A short claim is held back for more of its scope only if more could join it: one
    exchange that nearly fills ``inference.max_input_chars`` is learnt at once."""
    memory = engine(inference={"max_input_chars": 500})
    upstream.handler = said_facts
    answer = "Tea is lovely, " + "and there is more to say about it, " * 12  # the exchange's ~480 characters: none more fits beside it
    assert learnt_without_the_batch_wait(memory, FAST, "Likes tea", answer), "held back 10 s for exchanges that could not join it"


def test_a_retry_is_not_held_back_for_more(engine: Callable[..., Memory], upstream: ScriptedUpstream) -> None:
    """An exchange that failed before is claimed alone (``claim_batch``): nothing can join it,
    so its retry is not held back for more of its scope."""
    memory = engine()
    failed: list[ScriptedRequest] = []

    def failing_once(req: ScriptedRequest) -> Reply:
        if req.stage == "extract" and not failed:
            failed.append(req)
            return Reply.error(503, "overloaded")
        return said_facts(req)

    upstream.handler = failing_once
    memory.store.outbox.put(exchange("alice", "Likes tea"))
    first = Learner(memory, FAST.model_copy(update={"batch_wait_seconds": 0, "retry_base_seconds": 2.0, "retry_max_seconds": 2.0}))
    first.start()
    try:  # its first attempt fails; the retry is due 2 s later, for the next learner
        assert wait_until(lambda: first.counters.failed_attempts == 1, 10)
    finally:
        first.stop()
    second = Learner(memory, FAST.model_copy(update={"batch_wait_seconds": 10.0}))
    second.start()
    try:
        second.notify()
        assert wait_until(lambda: second.counters.learned == 1, 7), "the retry was held back for more"
        assert memories(memory) == ["Likes tea"] and len(upstream.chat_requests("extract")) == 2
    finally:
        second.stop()


def test_batch_size_one_never_holds_a_claim_back(engine: Callable[..., Memory], upstream: ScriptedUpstream) -> None:
    memory = engine()
    upstream.handler = said_facts
    assert learnt_without_the_batch_wait(memory, FAST.model_copy(update={"batch_size": 1}), "Likes tea")
