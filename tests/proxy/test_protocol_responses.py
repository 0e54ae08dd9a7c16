"""OpenAI's Responses API with memory, on the embedded client, through the server (the openai
SDK pointed at it) and on the hosted client: the seed scenario, streams, tool items, errors and
what is learnt, against the scripted upstream speaking the Responses protocol over real HTTP."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Callable

import httpx
import openai
import pytest

from memlane import AsyncMemlane, Memlane
from memlane.proxy.recall import MEMORY_PREAMBLE
from memlane.testing import Reply, ScriptedUpstream, openai_spec
from memlane.testing.live_server import LiveServer
from tests.scenarios import SPEC_PATH, restaurant_llm
from tests.threads import wait_until

ALLERGY = "I love Indian food but I cannot eat pizza since I'm allergic to cheese."
DINNER = "Suggest dinner options in San Francisco."
INSTRUCTIONS = "You are a helpful assistant who plans meals."


def answers(upstream: ScriptedUpstream) -> list[dict[str, Any]]:
    """The Responses requests the model server got for chats (not memlane's own memory calls)."""
    return [r.json for r in upstream.model_requests("chat", protocol="responses")]


def blocks(request: dict[str, Any]) -> list[str]:
    items = request["input"] if isinstance(request["input"], list) else []
    return [i["content"] for i in items if isinstance(i.get("content"), str) and MEMORY_PREAMBLE in i["content"]]


def test_the_seed_scenario_through_responses_on_the_embedded_client(make_client: Callable[..., Memlane],
                                                                    upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    client = make_client()
    first = client.responses.create(model="m", input=ALLERGY, instructions=INSTRUCTIONS, user_id="alice")
    assert first.output_text == "Noted! Here is my suggestion." and first.metadata.exchange_id
    assert client.flush(timeout=30)
    assert {m["memory"] for m in client.memory.get_all(user_id="alice")["results"]} == {"Is allergic to cheese", "Loves Indian food"}

    answer = client.responses.create(model="m", input=DINNER, instructions=INSTRUCTIONS, user_id="alice", include_memories=True)
    sent = answers(upstream)[-1]
    assert sent["instructions"] == INSTRUCTIONS, "the system prompt is the caller's, unchanged"
    assert [i.get("role") for i in sent["input"]] == ["system", "user"] and sent["input"][-1]["content"] == DINNER
    assert "Is allergic to cheese" in blocks(sent)[0]
    assert {m.memory for m in answer.metadata.memories} == {"Is allergic to cheese", "Loves Indian food"}
    assert isinstance(answer, openai.types.responses.Response)


def test_a_stream_passes_events_through_and_is_learnt_from(make_client: Callable[..., Memlane], upstream: ScriptedUpstream) -> None:
    upstream.handler = lambda req: restaurant_llm(req) if req.stage != "chat" else Reply.text("Great, I will remember you love Indian food.")
    client = make_client()
    stream = client.responses.create(model="m", input="I love Indian food. Recommend a dish for me.", user_id="alice", stream=True)
    kinds = [event.type for event in stream]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed" and "response.output_text.delta" in kinds
    assert stream.metadata.exchange_id
    assert client.flush(timeout=30)
    extract = upstream.chat_requests("extract")[-1].last_user_text
    assert "Great, I will remember you love Indian food." in extract, "the streamed answer is what is learnt"
    assert [m["memory"] for m in client.memory.get_all(user_id="alice")["results"]] == ["Loves Indian food"]


def test_tool_items_pass_through_and_only_the_users_words_are_learnt(make_client: Callable[..., Memlane],
                                                                      upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    client = make_client()
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "Book a table; I am allergic to cheese."},
                                     {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}]},
        {"type": "function_call", "call_id": "c1", "name": "book", "arguments": "{\"indian food\": true}"},
        {"type": "function_call_output", "call_id": "c1", "output": "booked; the user loves Indian food"},
    ]
    client.responses.create(model="m", input=items, user_id="alice", tools=[{"type": "function", "name": "book", "parameters": {}}])
    sent = answers(upstream)[-1]
    assert [i for i in sent["input"] if MEMORY_PREAMBLE not in str(i.get("content"))] == items, "items reach the model unchanged"
    assert sent["tools"] == [{"type": "function", "name": "book", "parameters": {}}]
    assert client.flush(timeout=30)
    learnt_from = " ".join(r.last_user_text for r in upstream.chat_requests("extract"))
    assert "booked" not in learnt_from and "indian food" not in learnt_from.lower(), "tool calls and outputs are never learnt"
    assert "allergic" not in learnt_from, "the user's turn came before the model's call: it was new in an earlier call"
    assert client.memory.get_all(user_id="alice")["results"] == []


def test_previous_response_id_passes_through_and_only_this_calls_turns_are_read(make_client: Callable[..., Memlane],
                                                                                  upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    client = make_client()
    first = client.responses.create(model="m", input="Hi there.", user_id="alice", store=True)
    client.responses.create(model="m", input=ALLERGY, previous_response_id=first.id, user_id="alice")
    assert answers(upstream)[-1]["previous_response_id"] == first.id
    assert client.flush(timeout=30)
    assert "Hi there" not in upstream.chat_requests("extract")[-1].last_user_text


def test_through_the_server_with_the_openai_sdk(server: LiveServer, upstream: ScriptedUpstream) -> None:
    sdk = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    httpx.post(server.url + "/v1/memories", json={"messages": "Is allergic to cheese", "user_id": "alice", "infer": False}).raise_for_status()
    answer = sdk.responses.create(model="m", input=DINNER, extra_body={"user_id": "alice", "include_memories": True})
    assert answer.output_text == "Noted! Here is my suggestion."
    assert [m["memory"] for m in answer.metadata["memories"]] == ["Is allergic to cheese"]
    assert "Is allergic to cheese" in blocks(answers(upstream)[-1])[0]

    raw = httpx.post(server.url + "/v1/responses", json={"model": "m", "input": DINNER, "stream": True},
                     headers={"x-memlane-user-id": "alice"})
    events = [json.loads(line[6:]) for line in raw.text.splitlines() if line.startswith("data: ")]
    names = [line[7:] for line in raw.text.splitlines() if line.startswith("event: ")]
    assert names == [e["type"] for e in events] and names[-1] == "response.completed"
    assert events[0]["metadata"]["exchange_id"], "the first event carries memlane's metadata"
    for event in events:
        openai_spec.validate_event({k: v for k, v in event.items() if k != "metadata"}, SPEC_PATH)
    with sdk.responses.stream(model="m", input=DINNER, extra_body={"user_id": "alice"}) as stream:
        assert stream.get_final_response().output_text == "Noted! Here is my suggestion."


def test_the_servers_errors_for_responses(server: LiveServer, upstream: ScriptedUpstream) -> None:
    for body, code in (({"input": "hi"}, "missing_model"), ({"model": "m", "input": []}, "invalid_input"),
                       ({"model": "m", "input": "hi", "user_id": "   "}, "scope")):
        refused = httpx.post(server.url + "/v1/responses", json=body)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == code, refused.text
    upstream.queue(Reply.error(429, "slow down", type="rate_limit_error", code="rate"))
    sdk = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.RateLimitError):
        sdk.responses.create(model="m", input="hi", extra_body={"user_id": "alice"})


def test_a_broken_store_never_breaks_a_response(make_client: Callable[..., Memlane], upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    client = make_client(embedder={"provider": "openai", "config": {"base_url": "http://127.0.0.1:9/v1", "api_key": "k", "model": "e",
                                                                  "max_retries": 0}})
    answer = client.responses.create(model="m", input=DINNER, user_id="alice")
    assert answer.output_text == "Noted! Here is my suggestion." and client.stats.recall_failures == 1


def test_the_async_and_the_hosted_clients(tmp_path: Path, server: LiveServer, upstream: ScriptedUpstream,
                                          make_client: Callable[..., Memlane]) -> None:
    httpx.post(server.url + "/v1/memories", json={"messages": "Is allergic to cheese", "user_id": "alice", "infer": False}).raise_for_status()
    hosted = Memlane(api_key="unused", host=server.url)
    answer = hosted.responses.create(model="m", input=DINNER, user_id="alice", include_memories=True)
    assert [m.memory for m in answer.metadata.memories] == ["Is allergic to cheese"]
    assert hosted.flush(timeout=30)

    async def run() -> str:
        async with AsyncMemlane(api_key="unused", host=server.url) as client:
            stream = await client.responses.create(model="m", input=DINNER, user_id="alice", stream=True)
            return "".join([e.delta async for e in stream if e.type == "response.output_text.delta"])

    assert asyncio.run(run()) == "Noted! Here is my suggestion."


def test_a_model_server_that_speaks_only_chat_completions_says_so(make_client: Callable[..., Memlane], server: LiveServer,
                                                                   upstream: ScriptedUpstream) -> None:
    upstream.handler = lambda req: Reply.error(404, "Not Found", type="not_found") if req.protocol == "responses" else restaurant_llm(req)
    with pytest.raises(openai.NotFoundError, match="may speak only chat completions"):
        make_client().responses.create(model="m", input=DINNER, user_id="alice")
    sdk = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError):  # through the server: the model server's own 404
        sdk.responses.create(model="m", input=DINNER, extra_body={"user_id": "alice"})


def test_hosted_falls_back_while_the_server_is_down_and_learns_at_resync(tmp_path: Path, upstream: ScriptedUpstream) -> None:
    from memlane.server.app import create_app
    from memlane.server.keys import KeyStore
    from tests.scenarios import client_config

    upstream.handler = restaurant_llm
    config = client_config(tmp_path / "server.db", upstream)
    keys = KeyStore(tmp_path / "keys.db")
    server = LiveServer(create_app(config, keys=keys, drain_seconds=5)).start()
    port = server.port
    server.stop()
    client = Memlane(api_key="unused", host=f"http://127.0.0.1:{port}", fallback={"base_url": upstream.url, "api_key": "k"})
    try:
        answer = client.responses.create(model="m", input=ALLERGY, user_id="alice", include_memories=True)
        assert answer.output_text == "Noted! Here is my suggestion." and answer.metadata.memories == []
        assert answers(upstream)[-1]["input"] == ALLERGY, "answered by the model server directly, as sent"
        assert client.pending_sync() == 1
        server = LiveServer(create_app(config, keys=keys, drain_seconds=5), port=port).start()
        assert client.sync() == 1
        assert wait_until(lambda: len(client.memory.get_all(user_id="alice")["results"]) == 2, 30)
    finally:
        client.close()
        server.stop()
