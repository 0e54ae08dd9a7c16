"""The Messages adapter in the one pipeline (``EmbeddedBackend.run`` with ``MESSAGES``, the sync
face the server's async one mirrors), against the scripted upstream's Anthropic endpoint: where
the memory block goes in Anthropic's shapes, and what is read as the user's."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import anthropic
import pytest

from memlane.errors import ValidationError
from memlane.proxy.embedded import EmbeddedBackend
from memlane.proxy.fields import MemlaneFields
from memlane.proxy.protocols import MESSAGES, PROTOCOLS
from memlane.proxy.recall import MEMORY_PREAMBLE
from memlane.testing import Reply, ScriptedUpstream
from tests.scenarios import client_config, restaurant_llm

DINNER = "Suggest dinner options in San Francisco."
ALICE = MemlaneFields(user_id="alice")


@pytest.fixture
def make_backend(tmp_path: Path, upstream: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., EmbeddedBackend]]:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    made: list[EmbeddedBackend] = []
    upstream.handler = restaurant_llm

    def make(placement: str = "pinned") -> EmbeddedBackend:
        section = {"base_url": upstream.url, "api_key": "k", "max_retries": 0, "timeout": 10,
                   "anthropic_base_url": upstream.anthropic_url, "anthropic_api_key": "anthropic-key"}
        config = client_config(tmp_path / f"{placement}.db", upstream, upstream=section, retrieval={"memory_placement": placement})
        made.append(EmbeddedBackend(config, None, asynchronous=False))
        made[-1].engine.add("Is allergic to cheese", user_id="alice", infer=False)
        return made[-1]

    yield make
    for backend in made:
        backend.close()


def sent(upstream: ScriptedUpstream) -> list[dict[str, Any]]:
    return [r.json for r in upstream.model_requests(protocol="messages")]


def has_block(content: Any) -> bool:
    return isinstance(content, list) and any(MEMORY_PREAMBLE in str(b.get("text", "")) for b in content)


def test_messages_is_a_registered_protocol_with_the_anthropic_upstream(make_backend: Callable[..., EmbeddedBackend]) -> None:
    backend = make_backend()
    assert PROTOCOLS["messages"] is MESSAGES and MESSAGES.upstream == "anthropic"
    assert isinstance(backend.client_for(MESSAGES), anthropic.Anthropic) and backend.client_for(MESSAGES) is backend.client_for(MESSAGES)


def test_the_sync_pipeline_recalls_answers_and_learns(make_backend: Callable[..., EmbeddedBackend], upstream: ScriptedUpstream) -> None:
    backend = make_backend()
    request = {"model": "claude", "max_tokens": 64, "system": [{"type": "text", "text": "Plan meals."}],
               "messages": [{"role": "user", "content": DINNER}]}
    given = copy.deepcopy(request)
    answer = backend.run(MESSAGES, request, MemlaneFields(user_id="alice", include_memories=True))
    assert request == given, "the caller's request is never changed"
    assert answer.content[0].text == "Noted! Here is my suggestion." and [m.memory for m in answer.metadata.memories] == ["Is allergic to cheese"]
    (body,) = sent(upstream)
    assert body["system"] == given["system"] and has_block(body["messages"][0]["content"])
    stream = backend.run(MESSAGES, {**request, "stream": True, "messages": [{"role": "user", "content": "I love Indian food"}]}, ALICE)
    assert isinstance(stream, anthropic.Stream)
    assert "".join(e.delta.text for e in stream if e.type == "content_block_delta") == "Noted! Here is my suggestion."
    assert backend.flush(30)
    assert sorted(r["memory"] for r in backend.engine.get_all(user_id="alice")["results"]) == ["Is allergic to cheese", "Loves Indian food"]


def test_an_agents_tool_loop_keeps_the_block_on_the_users_turn(make_backend: Callable[..., EmbeddedBackend], upstream: ScriptedUpstream) -> None:
    """The tool results come back as a user message: it is the tool's turn, so the block stays
    pinned on the user's own turn and the loop's request repeats the first one."""
    backend = make_backend()
    upstream.queue(Reply.tools([{"name": "book", "arguments": {"time": "8pm"}}]))
    turns: list[dict[str, Any]] = [{"role": "user", "content": "Book me a dinner table."}]
    first = backend.run(MESSAGES, {"model": "claude", "max_tokens": 64, "messages": turns}, ALICE)
    use = first.content[-1]
    turns += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
              {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "booked at 8"}]}]
    backend.run(MESSAGES, {"model": "claude", "max_tokens": 64, "messages": turns}, ALICE)
    one, loop = sent(upstream)
    assert has_block(loop["messages"][0]["content"]) and loop["messages"][0] == one["messages"][0]
    assert loop["messages"][1:] == json.loads(json.dumps(turns[1:])), "tool_use and tool_result blocks untouched, no block among them"
    assert MESSAGES.turns({"messages": turns})[-1] == {"role": "tool", "content": ""}, "never read as the user's"


def test_a_block_goes_after_tool_results_that_share_the_users_message(make_backend: Callable[..., EmbeddedBackend],
                                                                    upstream: ScriptedUpstream) -> None:
    """Anthropic wants tool results first in their message: the user's text after them gets the block."""
    backend = make_backend()
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "no tables left"}
    turns = [{"role": "user", "content": "Book me a table."},
             {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "book", "input": {}}]},
             {"role": "user", "content": [result, {"type": "text", "text": DINNER}]}]
    backend.run(MESSAGES, {"model": "claude", "max_tokens": 64, "messages": turns}, ALICE)
    latest = sent(upstream)[0]["messages"][-1]["content"]
    assert latest[0] == result and MEMORY_PREAMBLE in latest[1]["text"] and latest[2] == {"type": "text", "text": DINNER}


@pytest.mark.parametrize("placement", ["before_last_user", "after_system"])
def test_the_other_placements(make_backend: Callable[..., EmbeddedBackend], upstream: ScriptedUpstream, placement: str) -> None:
    backend = make_backend(placement)
    request = {"model": "claude", "max_tokens": 64, "system": "Plan meals.", "messages": [{"role": "user", "content": DINNER}]}
    backend.run(MESSAGES, request, ALICE)
    (body,) = sent(upstream)
    if placement == "after_system":  # the old placement: the block ends the system prompt
        assert body["system"][0] == {"type": "text", "text": "Plan meals."} and MEMORY_PREAMBLE in body["system"][1]["text"]
        assert body["messages"] == request["messages"]
    else:
        assert body["system"] == "Plan meals." and has_block(body["messages"][0]["content"])


def test_the_turns_recall_and_learning_read() -> None:
    request = {"system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Plan meals."}], "messages": [
        {"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x/menu.png"}},
                                     {"type": "text", "text": "What is on this menu?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me look."}, {"type": "tool_use", "id": "t", "name": "ocr", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "I am allergic to cheese"}]},
    ]}
    assert MESSAGES.turns(request) == [{"role": "system", "content": "Be brief.\nPlan meals."},
                                       {"role": "user", "content": "What is on this menu?"},
                                       {"role": "assistant", "content": "Let me look."}, {"role": "tool", "content": ""}]
    with pytest.raises(ValidationError, match="system prompt is the top-level system field"):
        MESSAGES.turns({"messages": [{"role": "system", "content": "x"}]})
    with pytest.raises(ValidationError, match="content"):
        MESSAGES.turns({"messages": [{"role": "user", "content": 3}]})


def test_the_anthropic_sdk_is_imported_only_by_a_messages_call() -> None:
    """It takes about a second to import: an app that never speaks Anthropic never pays it."""
    code = ("import sys; from memlane import Memlane; from memlane.proxy.protocols import MESSAGES; "
            "import memlane.proxy.embedded; MESSAGES.turns({'messages': [{'role': 'user', 'content': 'hi'}]}); "
            "assert 'anthropic' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code], check=True)  # PYTHONPATH is inherited
