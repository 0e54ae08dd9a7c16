"""Where the recalled memories go (memlane.proxy.placement). By default each turn's block stays
where it was first sent: every request repeats the previous one as its exact byte prefix, which
is what providers' prompt caches (exact prefix) reuse, and only memories the conversation was
not shown yet are added, before the latest user turn."""

from __future__ import annotations

import json
import os
from typing import Any, Callable

from memlane import Memlane
from memlane.proxy.recall import MEMORY_PREAMBLE
from memlane.testing import ScriptedUpstream
from tests.scenarios import restaurant_llm

SYSTEM = {"role": "system", "content": "You are a helpful assistant who plans meals."}
QUESTIONS = ["Suggest dinner options in San Francisco.", "Something near the Mission?", "And for a cheese lover's friend?"]


def converse(client: Memlane, questions: list[str], user: str = "alice", between: Callable[[int], None] | None = None) -> None:
    """A conversation that grows turn by turn, as an app sends it."""
    history: list[dict[str, Any]] = [SYSTEM]
    for turn, question in enumerate(questions):
        if between is not None:
            between(turn)
        history.append({"role": "user", "content": question})
        reply = client.chat.completions.create(model="m", messages=history, user_id=user)
        history.append({"role": "assistant", "content": reply.choices[0].message.content})


def shape(body: bytes) -> list[str]:
    """Each message's role, a memory block as the memories it holds."""
    out = []
    for m in json.loads(body)["messages"]:
        content = str(m["content"])
        out.append("memories: " + ", ".join(line.split("] ", 1)[1] for line in content.splitlines() if line.startswith("- ["))
                   if MEMORY_PREAMBLE in content else m["role"])
    return out


def chats(upstream: ScriptedUpstream) -> list[bytes]:
    return [r.body for r in upstream.chat_requests("chat")]


def test_each_request_repeats_the_previous_one_whole_and_adds_only_new_memories(
        make_client: Callable[..., Memlane], upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    client = make_client()
    client.memory.add("Is allergic to cheese", user_id="alice", infer=False)
    converse(client, QUESTIONS, between=lambda turn: turn == 2 and client.memory.add("Loves Indian food", user_id="alice", infer=False))
    bodies = chats(upstream)
    assert [shape(b) for b in bodies] == [
        ["system", 'memories: "Is allergic to cheese"', "user"],
        ["system", 'memories: "Is allergic to cheese"', "user", "assistant", "user"],
        ["system", 'memories: "Is allergic to cheese"', "user", "assistant", "user", "assistant", 'memories: "Loves Indian food"', "user"],
    ]
    for before, after in zip(bodies, bodies[1:]):
        tail = before[len(os.path.commonprefix([before, after])):]
        assert tail.startswith(b"]") and len(tail) < 40, f"only the end of the previous request differs: {tail!r}"


def test_an_agents_tool_loop_gets_the_same_block_and_another_user_never_does(
        make_client: Callable[..., Memlane], upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    client = make_client()
    client.memory.add("Is allergic to cheese", user_id="alice", infer=False)
    turns: list[dict[str, Any]] = [SYSTEM, {"role": "user", "content": "Book me a dinner table."}]
    client.chat.completions.create(model="m", messages=turns, user_id="alice")
    turns += [{"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                                     "function": {"name": "book", "arguments": "{}"}}]},
              {"role": "tool", "tool_call_id": "c1", "content": "booked at 8"}]
    client.chat.completions.create(model="m", messages=turns, user_id="alice")
    client.chat.completions.create(model="m", messages=turns, user_id="bob")
    first, loop, bob = chats(upstream)
    assert shape(loop) == ["system", 'memories: "Is allergic to cheese"', "user", "assistant", "tool"]
    assert loop.startswith(first[:first.rindex(b"]")]), "the tool loop's request repeats the first one"
    assert MEMORY_PREAMBLE.encode() not in bob, "bob's identical conversation finds nothing of alice's"


def test_before_last_user_places_a_fresh_block_each_turn(make_client: Callable[..., Memlane], upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    client = make_client(retrieval={"memory_placement": "before_last_user"})
    client.memory.add("Is allergic to cheese", user_id="alice", infer=False)
    converse(client, QUESTIONS[:2])
    assert [shape(b) for b in chats(upstream)] == [["system", 'memories: "Is allergic to cheese"', "user"],
                                                   ["system", "user", "assistant", 'memories: "Is allergic to cheese"', "user"]]


def test_after_system_is_the_old_placement(make_client: Callable[..., Memlane], upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    client = make_client(retrieval={"memory_placement": "after_system"})
    client.memory.add("Is allergic to cheese", user_id="alice", infer=False)
    converse(client, QUESTIONS[:2])
    assert [shape(b) for b in chats(upstream)] == [["system", 'memories: "Is allergic to cheese"', "user"],
                                                   ["system", 'memories: "Is allergic to cheese"', "user", "assistant", "user"]]
