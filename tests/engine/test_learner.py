"""The background learner on every backend: one slow exchange holds up only its own scope, an
exchange no retry can help is set aside as dead (kept, listed, re-queueable), and exit waits
for dead items never."""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

import pytest

from memlane import Memory
from memlane.config import OutboxConfig
from memlane.engine.learner import HURRY_SECONDS, Learner
from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream
from tests.threads import run_in_threads, wait_until

FAST = OutboxConfig(retry_base_seconds=0.05, retry_max_seconds=0.1, poll_seconds=0.05, workers=2)


def exchange(user: str, text: str) -> dict[str, Any]:
    return {"scope": {"user_id": user}, "messages": [{"role": "user", "content": text}], "metadata": {}, "model": "scripted-model"}


def facts_from_text(req: ScriptedRequest) -> Reply:
    """Each exchange's first user turn is its fact (each exchange's apart when several are asked together)."""
    if req.stage == "extract":
        said = [next(text for role, text in turns if role == "user") for turns in req.exchanges]
        delay = 3 if any("slow" in text for text in said) else 0
        if len(said) == 1:
            return Reply.json({"facts": said}, delay=delay)
        return Reply.json({"exchanges": [{"exchange": n, "facts": [text]} for n, text in enumerate(said, 1)]}, delay=delay)
    return Reply.json({"memory": [{"id": "0", "text": f, "event": "ADD"} for f in req.reconcile_payload["new_facts"]]})


@pytest.fixture
def memory(make_memory: Callable[..., Memory], fast_embedder_config: dict[str, Any]) -> Memory:
    return make_memory(embedder=fast_embedder_config)


def learn_everything(memory: Memory) -> dict[str, Any]:
    """Run a learner until the outbox is drained; its status then."""
    learner = Learner(memory, FAST)
    try:
        assert learner.flush(timeout=30)
        return learner.status()
    finally:
        learner.stop()


def memories(memory: Memory, user: str) -> list[str]:
    return sorted(r["memory"] for r in memory.get_all(user_id=user)["results"])


def test_a_slow_exchange_holds_up_only_its_own_scope(memory: Memory, upstream: ScriptedUpstream) -> None:
    """One exchange per claim (``batch_size`` 1; tests/engine/test_batched_learning.py has the
    same with batches): a scope's exchanges go in order, each after the one before it."""
    upstream.handler = facts_from_text
    learner = Learner(memory, FAST.model_copy(update={"batch_size": 1}))
    memory.store.outbox.put(exchange("alice", "Likes slow jazz"))
    memory.store.outbox.put(exchange("alice", "Likes tea"))
    memory.store.outbox.put(exchange("bob", "Likes chess"))
    learner.start()
    try:
        assert wait_until(lambda: memories(memory, "bob") == ["Likes chess"], 10)
        assert memories(memory, "alice") == [], "bob waited for alice's slow exchange (its extraction takes 3 s)"
        asked = [r.last_user_text for r in upstream.chat_requests("extract")]
        assert not any("tea" in text for text in asked), "alice's second exchange started before her first was learnt"
        assert learner.flush(timeout=15)
        assert memories(memory, "alice") == ["Likes slow jazz", "Likes tea"]
        alice = [r.last_user_text for r in upstream.chat_requests("extract") if "jazz" in r.last_user_text or "tea" in r.last_user_text]
        assert len(alice) == 2 and "jazz" in alice[0], "alice's exchanges are learnt one at a time, in order"
    finally:
        learner.stop()


def test_an_error_retrying_cannot_fix_is_set_aside_at_once_and_can_be_requeued(memory: Memory, upstream: ScriptedUpstream) -> None:
    upstream.handler = lambda req: Reply.error(404, "The model `scripted-model` does not exist", type="invalid_request_error", code="model_not_found")
    learner = Learner(memory, FAST)
    item_id = memory.store.outbox.put(exchange("alice", "Likes tea"))
    learner.start()
    try:
        started = time.monotonic()
        assert learner.flush(timeout=10), "a dead item never holds up flush (or exit)"
        assert time.monotonic() - started < 5
        assert len(upstream.chat_requests("extract")) == 1, "not retried: the same request gets the same 404"
        status = learner.status()
        assert (status["pending"], status["dead"], status["dead_lettered"]) == (0, 1, 1)
        (dead,) = memory.store.outbox.dead()
        assert dead.id == item_id and "does not exist" in (dead.last_error or "") and dead.payload == exchange("alice", "Likes tea")
        upstream.handler = facts_from_text  # the operator fixes the model name
        assert memory.store.outbox.requeue() == 1
        learner.notify()
        assert learner.flush(timeout=10)
        assert memories(memory, "alice") == ["Likes tea"] and memory.store.outbox.stats()["dead"] == 0
    finally:
        learner.stop()


def test_transient_errors_are_retried_up_to_max_attempts(memory: Memory, upstream: ScriptedUpstream) -> None:
    upstream.handler = lambda req: Reply.error(503, "overloaded")
    learner = Learner(memory, FAST.model_copy(update={"max_attempts": 3}))
    memory.store.outbox.put(exchange("alice", "Likes tea"))
    learner.start()
    try:
        assert learner.flush(timeout=10)
        assert len(upstream.chat_requests("extract")) == 3
        assert memory.store.outbox.stats()["dead"] == 1
        assert memory.store.outbox.requeue(["no-such-id"]) == 0
    finally:
        learner.stop()


def test_learning_waits_for_recalls_in_flight(memory: Memory, upstream: ScriptedUpstream) -> None:
    """While a chat's recall runs, background learning does not start a step (up to
    outbox.yield_seconds); it goes on once the recall is done."""
    upstream.handler = facts_from_text
    learner = Learner(memory, FAST.model_copy(update={"yield_seconds": 30}))
    memory.enqueue(exchange("alice", "I keep bees"))
    with memory.foreground.running():  # what search does around every recall
        learner.start()
        time.sleep(0.5)
        assert memory.outbox_status()["pending"] == 1 and memories(memory, "alice") == []
    try:
        assert wait_until(lambda: memories(memory, "alice") == ["I keep bees"], 10)
    finally:
        learner.stop()


def test_learning_does_not_wait_forever_for_a_busy_foreground(memory: Memory, upstream: ScriptedUpstream) -> None:
    upstream.handler = facts_from_text
    learner = Learner(memory, FAST.model_copy(update={"yield_seconds": 0.05}))
    memory.enqueue(exchange("alice", "I keep bees"))
    with memory.foreground.running():
        learner.start()
        try:
            assert wait_until(lambda: memories(memory, "alice") == ["I keep bees"], 10)
        finally:
            learner.stop()


def test_the_learner_counts_the_facts_it_dropped_by_reason(memory: Memory, upstream: ScriptedUpstream) -> None:
    def suggesting(req: ScriptedRequest) -> Reply:
        if req.stage == "extract":
            return Reply.json({"facts": ["Has a dog named Pepper", "Beagles love long walks", "Should I buy a harness?"]})
        return Reply.json({"memory": [{"id": "9", "text": f, "event": "ADD"} for f in req.reconcile_payload["new_facts"]]})

    upstream.handler = suggesting
    memory.enqueue({"scope": {"user_id": "alice"}, "metadata": {}, "model": "m", "messages": [
        {"role": "user", "content": "My dog Pepper needs a walk. Should I buy a harness?"},
        {"role": "assistant", "content": "Beagles love long walks!"}]})
    status = learn_everything(memory)
    assert status["dropped"] == {"answer": 1, "question": 1} and status["events"]["ADD"] == 1
    assert memories(memory, "alice") == ["Has a dog named Pepper"]


def test_an_exchange_whose_answers_stay_unusable_is_set_aside_after_two_attempts(memory: Memory, upstream: ScriptedUpstream) -> None:
    """A model that cannot give the contract's JSON is not asked again and again (issue 25 saw
    attempts 1, 2, 3 ... of 8): after ``outbox.max_unusable_attempts`` the exchange is dead,
    with the model's answer in its reason."""
    upstream.handler = lambda req: Reply.text("Sure! Here are the facts: Likes tea")
    memory.store.outbox.put(exchange("alice", "I like tea"))
    status = learn_everything(memory)
    assert status["dead"] == 1 and status["failed_attempts"] == 2 and status["dead_lettered"] == 1
    assert "invalid JSON twice" in status["worker_last_error"]
    assert len(upstream.chat_requests("extract")) == 2 and len(upstream.chat_requests("repair")) == 2, \
        "two attempts, each with its one repair round"


def test_the_memory_llm_client_is_kept_while_exchanges_keep_coming_and_let_go_when_idle(
        memory: Memory, upstream: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under load the outbox is empty between most arrivals: the learner keeps its client (one
    built for all of them, not one per arrival: rebuilding it was most of learning's CPU), and
    lets it go, with its connection, once nothing has come for ``IDLE_RELEASE_SECONDS``."""
    import memlane.llms.openai as openai_llm
    from memlane.engine.learner import IDLE_RELEASE_SECONDS

    built: list[Any] = []
    real = openai_llm.build_client
    monkeypatch.setattr(openai_llm, "build_client", lambda *a, **k: built.append(real(*a, **k)) or built[-1])
    upstream.handler = facts_from_text
    learner = Learner(memory, FAST)
    learner.start()
    try:
        for n in range(6):  # each arrival learnt, then a pause shorter than IDLE_RELEASE_SECONDS
            memory.enqueue(exchange("alice", f"Likes thing {n}"))
            learner.notify()
            assert wait_until(lambda: learner.counters.learned == n + 1, 10)
            time.sleep(IDLE_RELEASE_SECONDS / 5)
        assert len(built) == 1, f"the client was rebuilt between arrivals: {len(built)} built"
        assert not built[0].is_closed(), "kept for all the arrivals"
        assert wait_until(built[0].is_closed, 5), "let go (its connections closed) once the learner is idle"
        memory.enqueue(exchange("alice", "Likes thing 6"))
        learner.notify()
        assert wait_until(lambda: learner.counters.learned == 7, 10) and len(built) == 2
    finally:
        learner.stop()


def test_a_short_claim_waits_for_more_of_its_scope_with_batch_wait_seconds(memory: Memory, upstream: ScriptedUpstream) -> None:
    """Exchanges arriving one by one while the learner keeps up: with ``batch_wait_seconds``
    they are gathered into batches (fewer LLM calls per exchange), each learnt within about that
    long of its arrival; without it each arrival is learnt alone (two calls each)."""
    upstream.handler = facts_from_text

    def calls_for_arrivals(settings: OutboxConfig, user: str, *, each_learnt_first: bool = False) -> tuple[int, float]:
        learner = Learner(memory, settings)
        learner.start()
        try:
            calls0, learnt0, started = learner.llm_calls.count, learner.counters.learned, time.monotonic()
            for n in range(6):
                memory.enqueue(exchange(user, f"Likes thing {n}"))
                learner.notify()
                time.sleep(0.1)
                if each_learnt_first:  # a learner that keeps up, however slow this machine is today
                    assert wait_until(lambda: learner.counters.learned == learnt0 + n + 1, 10)
            assert wait_until(lambda: learner.counters.learned == learnt0 + 6, 10)
            return learner.llm_calls.count - calls0, time.monotonic() - started
        finally:
            learner.stop()

    alone, _ = calls_for_arrivals(FAST.model_copy(update={"batch_wait_seconds": 0}), "alice", each_learnt_first=True)
    gathered, took = calls_for_arrivals(FAST.model_copy(update={"batch_wait_seconds": 0.45}), "bob")
    assert alone >= 8, f"each arrival learnt (nearly) alone without a wait: {alone} calls"
    assert gathered <= 6, f"arrivals 0.1 s apart gathered into batches: {gathered} calls for 6 exchanges"
    assert took < 0.6 + 0.45 + 2, took
    assert memories(memory, "bob") == [f"Likes thing {n}" for n in range(6)]


def test_a_flush_is_not_kept_waiting_by_batch_wait_seconds(memory: Memory, upstream: ScriptedUpstream) -> None:
    """Holding a short batch back for more is for load; a caller waiting in ``flush`` wants
    what is queued learnt now."""
    upstream.handler = facts_from_text
    learner = Learner(memory, FAST.model_copy(update={"batch_wait_seconds": 5.0}))
    learner.start()
    try:
        memory.enqueue(exchange("carol", "Likes thing 1"))
        started = time.monotonic()
        assert learner.flush(10)
        assert time.monotonic() - started < 3, "learnt at once, not after the 5 s wait"
        assert memories(memory, "carol") == ["Likes thing 1"]
        memory.enqueue(exchange("carol", "Likes thing 2"))
        learner.notify()
        time.sleep(1.0)  # nobody flushing: the short claim is held back
        assert memories(memory, "carol") == ["Likes thing 1"]
    finally:
        learner.stop()


def test_a_batch_held_back_is_let_go_when_someone_hurries_and_a_hurry_wears_off(memory: Memory, upstream: ScriptedUpstream) -> None:
    """``hurry`` is what a server does when a caller waits for an exchange (``GET
    /v1/exchanges/{id}?wait=``, a learner process told by its server): the short batch already
    held back for more is learnt at once, not after ``batch_wait_seconds``."""
    upstream.handler = facts_from_text
    learner = Learner(memory, FAST.model_copy(update={"batch_wait_seconds": 5.0}))
    learner.start()
    try:
        memory.enqueue(exchange("dave", "Likes thing 1"))
        learner.notify()
        time.sleep(0.5)  # claimed and held back for more of dave's exchanges
        assert memories(memory, "dave") == []
        hurried = time.monotonic()
        learner.hurry()
        assert wait_until(lambda: memories(memory, "dave") == ["Likes thing 1"], 10)
        assert time.monotonic() - hurried < 3, "learnt when hurried, not after the 5 s wait"
        time.sleep(HURRY_SECONDS)  # the hurry is over: short batches are held back again
        memory.enqueue(exchange("dave", "Likes thing 2"))
        learner.notify()
        time.sleep(1.0)
        assert memories(memory, "dave") == ["Likes thing 1"]
    finally:
        learner.stop()


def test_stop_lets_a_held_batch_go_without_waiting_it_out(memory: Memory, upstream: ScriptedUpstream) -> None:
    upstream.handler = facts_from_text
    learner = Learner(memory, FAST.model_copy(update={"batch_wait_seconds": 8.0}))
    learner.start()
    memory.enqueue(exchange("erin", "Likes thing 1"))
    learner.notify()
    time.sleep(0.5)
    stopping = time.monotonic()
    learner.stop(timeout=10)
    assert time.monotonic() - stopping < 3, "stop waited out the batch wait"
    assert memory.outbox_status()["pending"] == 1  # left for the next learner, not lost


def memory_llm_connections(upstream: ScriptedUpstream) -> list[Any]:
    """The connections to the scripted server whose last request was one of this test's memory
    calls (the session's server also holds earlier tests' clients' connections)."""
    ours = [r for r in upstream.chat_requests() if r.stage in ("extract", "reconcile", "repair")]
    return [c for c in upstream.open_connections() if any(c.last is r for r in ours)]


def test_a_stopped_learner_holds_no_connection_to_the_memory_model(memory: Memory, upstream: ScriptedUpstream) -> None:
    """The client is kept between arrivals (``IDLE_RELEASE_SECONDS``), but a learner stopped
    right after its last exchange (``flush`` then ``stop``: what a caller's ``close`` does)
    must not leave its kept-alive connection behind: no worker is left to let it go later."""
    from memlane.engine.learner import IDLE_RELEASE_SECONDS

    upstream.handler = facts_from_text
    learner = Learner(memory, FAST)
    memory.enqueue(exchange("alice", "Likes tea"))
    try:
        assert learner.flush(timeout=10)
        assert memory_llm_connections(upstream), "the learner talked to the memory model over a kept-alive connection"
    finally:
        learner.stop()
    assert wait_until(lambda: not memory_llm_connections(upstream), IDLE_RELEASE_SECONDS + 2), \
        f"the stopped learner's client still holds {memory_llm_connections(upstream)}"


def test_a_flush_ends_a_wait_for_more_that_had_already_begun(memory: Memory, upstream: ScriptedUpstream) -> None:
    """A short batch already held back for more (``batch_wait_seconds``) when ``flush`` is
    called is learnt at once too: a flush is not kept waiting for what the wait was for."""
    upstream.handler = facts_from_text
    learner = Learner(memory, FAST.model_copy(update={"batch_wait_seconds": 5.0, "workers": 1}))
    learner.start()
    try:
        memory.enqueue(exchange("dave", "Likes thing 1"))
        learner.notify()
        time.sleep(0.5)  # the worker claimed it, found it short and young, and waits for more
        assert memories(memory, "dave") == [] and learner.counters.learned == 0
        started = time.monotonic()
        assert learner.flush(10)
        assert time.monotonic() - started < 2.5, f"flush waited {time.monotonic() - started:.1f} s for the held-back batch"
        assert memories(memory, "dave") == ["Likes thing 1"]
    finally:
        learner.stop()


def test_a_start_after_a_stop_that_timed_out_leaves_a_working_learner(memory: Memory, upstream: ScriptedUpstream) -> None:
    """``stop(timeout)`` can return while a worker is still inside a slow memory call; a
    ``start`` then must not take that thread for a running learner (it leaves once its call is
    done, and nothing would learn again): the learner has its ``workers`` again, so another
    scope's exchange is learnt while the slow call is still in flight, and the slow one too."""
    upstream.handler = facts_from_text  # "slow": a 3 s extraction
    learner = Learner(memory, FAST)  # two workers
    memory.enqueue(exchange("alice", "Likes slow jazz"))
    learner.start()
    try:
        assert wait_until(lambda: upstream.chat_requests("extract"), 10), "a worker is inside the slow call"
        learner.stop(timeout=0.1)
        assert learner.counter_status()["worker_alive"], "the stop timed out: its worker is still in the call"
        learner.start()
        memory.enqueue(exchange("bob", "Likes chess"))
        learner.notify()
        assert wait_until(lambda: memories(memory, "bob") == ["Likes chess"], 20), "nothing learnt after the restart"
        assert memories(memory, "alice") == [], "bob was learnt by a fresh worker, not after alice's slow call"
        assert wait_until(lambda: memories(memory, "alice") == ["Likes slow jazz"], 20)
        memory.enqueue(exchange("carol", "Likes tea"))
        learner.notify()
        assert wait_until(lambda: memories(memory, "carol") == ["Likes tea"], 20), "the old worker's leaving stopped no one"
    finally:
        learner.stop()


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # (counting, not storing)
def test_the_counters_add_up_when_several_workers_count_at_once(memory: Memory, upstream: ScriptedUpstream) -> None:
    """Every worker counts into one ``LearnerCounters``: an exchange learnt by each of many
    threads at once is counted exactly, its events and dropped facts too (a ``+=`` on a shared
    field, or a read-then-write of a dict entry, loses updates when threads switch in between:
    here they switch as often as the interpreter allows)."""
    def two_facts(req: ScriptedRequest) -> Reply:
        if req.stage == "extract":
            return Reply.json({"facts": ["Has a dog named Pepper", "Beagles love long walks"]})
        return Reply.json({"memory": [{"id": "9", "text": f, "event": "ADD"} for f in req.reconcile_payload["new_facts"]]})

    upstream.handler = two_facts
    memory.store.outbox.put({"scope": {"user_id": "alice"}, "metadata": {}, "model": "m", "messages": [
        {"role": "user", "content": "My dog Pepper needs a walk."}, {"role": "assistant", "content": "Beagles love long walks!"}]})
    learner = Learner(memory, FAST)
    (item,) = memory.store.outbox.claim_batch(learner.owner, 60, 1)
    (learnt,) = memory.learn_batch([item])  # a real exchange's outcome: one ADD, one fact dropped
    assert [a.event for a in learnt.applied] == ["ADD"] and len(learnt.dropped) == 1
    reason = learnt.dropped[0].reason
    threads, each = 8, 2000
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        errors = run_in_threads(lambda: [learner._learnt(item, learnt, 0.0) for _ in range(each)], threads, 120)
    finally:
        sys.setswitchinterval(interval)
    assert not errors
    status = learner.counter_status()
    assert (status["learned"], status["events"]["ADD"], status["dropped"]) == (threads * each, threads * each, {reason: threads * each})


def test_several_workers_count_every_exchange_they_learn(memory: Memory, upstream: ScriptedUpstream) -> None:
    upstream.handler = facts_from_text
    users = [f"user-{n}" for n in range(8)]
    for n in range(3):
        for user in users:
            memory.store.outbox.put(exchange(user, f"Likes thing {n}"))
    learner = Learner(memory, FAST.model_copy(update={"workers": 4, "batch_size": 1}))
    try:
        assert learner.flush(timeout=60)
        status = learner.status()
    finally:
        learner.stop()
    assert (status["learned"], status["events"]["ADD"], status["failed_attempts"], status["pending"]) == (24, 24, 0, 0)
    assert all(memories(memory, user) == [f"Likes thing {n}" for n in range(3)] for user in users)


def test_one_worker_holds_a_short_batch_back_while_the_others_learn_other_scopes(
        make_memory: Callable[..., Memory], fast_embedder_config: dict[str, Any], upstream: ScriptedUpstream) -> None:
    """A short claim held back for more of its scope (``batch_wait_seconds``) keeps its scope
    leased: another worker does not claim the same exchange and hold it too (then every worker
    waited on one scope's batch, and other scopes' exchanges waited with it). Bob's exchange
    leaves no room for another in its extraction call, so it is never held back itself: it is
    learnt at once by the worker that is not holding alice's."""
    memory = make_memory(embedder=fast_embedder_config, inference={"max_input_chars": 500})
    upstream.handler = facts_from_text
    learner = Learner(memory, FAST.model_copy(update={"batch_wait_seconds": 10.0}))  # two workers
    learner.start()
    try:
        memory.enqueue(exchange("alice", "Likes thing 1"))
        learner.notify()
        time.sleep(0.5)  # a worker claims it, short and young, and holds it back; the other looks again meanwhile
        assert memories(memory, "alice") == []
        long_answer = "Chess is great, " + "and there is more to say about it, " * 12
        memory.enqueue({**exchange("bob", "Likes chess"), "messages": [
            {"role": "user", "content": "Likes chess"}, {"role": "assistant", "content": long_answer}]})
        learner.notify()
        assert wait_until(lambda: memories(memory, "bob") == ["Likes chess"], 6), "bob waited for alice's held batch"
        assert memories(memory, "alice") == [], "alice's batch is still held back for more"
        assert learner.flush(10) and memories(memory, "alice") == ["Likes thing 1"]
    finally:
        learner.stop()
