"""The ``llm`` reranker: the memory LLM (the scripted OpenAI-protocol server over real HTTP)
scores the fused top candidates in one JSON call; an answer it cannot use, an error or a slow
model leave the fused order."""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import pytest

from memlane import Memory
from memlane.rerankers.llm import PROMPT_PREFIX, parse_scores
from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream
from memlane.errors import RerankerError

MEMORIES = ["I am allergic to cheese", "I live in San Francisco", "My favourite cuisine is Indian"]
QUESTION = "what can't I eat?"


def rerank_payload(req: ScriptedRequest) -> dict[str, Any] | None:
    text = req.last_user_text
    return json.loads(text.split("\n\n", 1)[1]) if text.startswith(PROMPT_PREFIX) else None


def allergy_judge(req: ScriptedRequest) -> Reply | None:
    """A model that knows an allergy answers what one cannot eat (it leaves out the city)."""
    payload = rerank_payload(req)
    if payload is None:
        return None
    return Reply.json({"scores": [{"id": m["id"], "score": 0.95 if "allergic" in m["text"] else 0.4}
                                  for m in payload["memories"] if "Francisco" not in m["text"]]})


def with_memories(make_memory: Callable[..., Memory], **config: Any) -> Memory:
    memory = make_memory(reranker={"provider": "llm", "config": config})
    memory.add(MEMORIES, user_id="alice", infer=False)
    return memory


def test_the_memory_llm_scores_the_candidates_in_one_json_call(make_memory: Callable[..., Memory], upstream: ScriptedUpstream) -> None:
    upstream.handler = allergy_judge
    memory = with_memories(make_memory)
    before = memory.search(QUESTION, user_id="alice", rerank=False)["results"]
    assert upstream.chat_requests() == []

    hits = memory.search(QUESTION, user_id="alice")["results"]

    assert [(h["memory"], h["score"]) for h in hits] == [
        ("I am allergic to cheese", 0.95), ("My favourite cuisine is Indian", 0.4), ("I live in San Francisco", 0.0)]
    (call,) = upstream.chat_requests()
    body = call.json
    assert body["response_format"] == {"type": "json_object"} and body["model"] == "scripted-model"
    payload = rerank_payload(call)
    assert payload == {"query": QUESTION, "memories": [{"id": str(i), "text": h["memory"]} for i, h in enumerate(before)]}
    assert not any(h["id"] in call.body.decode() for h in before)  # the model sees short ids, never memory ids


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("answer", [
    Reply.text("The allergy is most relevant."),
    Reply.json({"ranking": [0, 2, 1]}),
    Reply.json({"scores": [{"id": "7", "score": 1.0}, {"id": "x", "score": 0.5}]}),
    Reply.error(500, "model overloaded"),
    Reply.json({"scores": []}, delay=3.0),
], ids=["prose", "other shape", "no known id", "500", "slow"])
def test_an_unusable_llm_answer_keeps_the_fused_order(answer: Reply, make_memory: Callable[..., Memory], upstream: ScriptedUpstream) -> None:
    memory = with_memories(make_memory, timeout=0.5)
    expected = memory.search(QUESTION, user_id="alice", rerank=False)["results"]
    upstream.queue(answer)
    started = time.monotonic()
    assert memory.search(QUESTION, user_id="alice")["results"] == expected
    assert time.monotonic() - started < 2.5
    assert memory.rerank_stats()["rerank_fallbacks"] == 1
    assert len(upstream.chat_requests()) == 1  # one call, no repair round trip in a search


def test_scores_are_read_strictly_but_missing_candidates_score_zero() -> None:
    assert parse_scores('{"scores": [{"id": "1", "score": 1.7}, {"id": 0, "score": 0.25}, {"id": "1", "score": 0.1}]}', 3) == [0.25, 1.0, 0.0]
    with pytest.raises(RerankerError, match="scored none"):
        parse_scores('{"scores": [{"id": "0", "score": "high"}]}', 2)
