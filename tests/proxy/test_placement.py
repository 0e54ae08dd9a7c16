"""Where the recalled memories go. By default just before the latest user turn: each request
then repeats the previous one, byte for byte, up to its memory block, which is what providers'
prompt caches (exact prefix) reuse. ``after_system`` keeps them at the top."""

from __future__ import annotations

import os
from typing import Any, Callable

from memlane import Memlane
from memlane.proxy.recall import MEMORY_PREAMBLE
from memlane.testing import ScriptedUpstream
from tests.scenarios import restaurant_llm

SYSTEM = {"role": "system", "content": "You are a helpful assistant who plans meals."}


def converse(client: Memlane, upstream: ScriptedUpstream, questions: list[str]) -> list[bytes]:
    """A conversation that grows turn by turn, as an app sends it; the chat requests upstream saw."""
    history: list[dict[str, Any]] = [SYSTEM]
    for question in questions:
        history.append({"role": "user", "content": question})
        reply = client.chat.completions.create(model="m", messages=history, user_id="alice")
        history.append({"role": "assistant", "content": reply.choices[0].message.content})
    return [r.body for r in upstream.chat_requests("chat")]


def roles(body: bytes) -> list[str]:
    import json

    return ["memories" if MEMORY_PREAMBLE in str(m["content"]) else m["role"] for m in json.loads(body)["messages"]]


QUESTIONS = ["Suggest dinner options in San Francisco.", "Something near the Mission?", "And for a cheese lover's friend?"]


def test_memories_go_just_before_the_latest_user_turn_and_the_prefix_stays_cacheable(
        make_client: Callable[..., Memlane], upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    client = make_client()
    client.memory.add("Is allergic to cheese", user_id="alice", infer=False)
    bodies = converse(client, upstream, QUESTIONS)
    assert [roles(b) for b in bodies] == [
        ["system", "memories", "user"],
        ["system", "user", "assistant", "memories", "user"],
        ["system", "user", "assistant", "user", "assistant", "memories", "user"],
    ]
    for before, after in zip(bodies, bodies[1:]):
        shared = len(os.path.commonprefix([before, after]))
        assert before[:shared].endswith(b'"role":"assistant"') or before.index(MEMORY_PREAMBLE.encode()[:40]) - shared < 40, \
            "the next request repeats the previous one up to its memory block"
    assert all(b"Is allergic to cheese" in b for b in bodies), "every request still carries the memory"


def test_after_system_is_the_old_placement(make_client: Callable[..., Memlane], upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    client = make_client(retrieval={"memory_placement": "after_system"})
    client.memory.add("Is allergic to cheese", user_id="alice", infer=False)
    bodies = converse(client, upstream, QUESTIONS[:2])
    assert [roles(b) for b in bodies] == [["system", "memories", "user"], ["system", "memories", "user", "assistant", "user"]]
