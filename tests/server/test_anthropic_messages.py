"""The anthropic SDK gets memory by changing its base_url: the real anthropic SDK against a real
uvicorn serving memlane, whose Messages calls go to the scripted upstream's Anthropic endpoint
(and whose learning goes to its OpenAI one, as configured)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable

import anthropic
import httpx
import pytest

from memlane.proxy.recall import MEMORY_PREAMBLE
from memlane.server.keys import KeyStore
from memlane.server.limits import Limits
from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import restaurant_llm

SEED = "I love Indian food but I cannot eat pizza since I'm allergic to cheese"
DINNER = "Suggest dinner options in San Francisco."
SYSTEM = "You are a helpful assistant who plans meals."
MODEL = "claude-sonnet-4-5"
UPSTREAM_KEY = "sk-ant-upstreamSECRET1234"


@pytest.fixture(autouse=True)
def no_anthropic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def upstream_section(upstream: ScriptedUpstream, **more: Any) -> dict[str, Any]:
    return {"base_url": upstream.url, "api_key": "upstream-key", "max_retries": 0, "timeout": 10,
            "anthropic_base_url": upstream.anthropic_url, "anthropic_api_key": UPSTREAM_KEY, **more}


@pytest.fixture
def anthropic_server(make_server: Callable[..., LiveServer], upstream: ScriptedUpstream) -> LiveServer:
    upstream.handler = restaurant_llm
    return make_server(upstream=upstream_section(upstream))


@pytest.fixture
def claude(anthropic_server: LiveServer) -> anthropic.Anthropic:
    """The official anthropic SDK, pointed at memlane instead of Anthropic (it adds /v1 itself)."""
    return anthropic.Anthropic(base_url=anthropic_server.url, api_key="unused-without-keys", max_retries=0)


def messages_calls(upstream: ScriptedUpstream) -> list[ScriptedRequest]:
    return upstream.model_requests(protocol="messages")


def learnt(server: LiveServer, metadata: Any) -> str:
    exchange_id = metadata["exchange_id"] if isinstance(metadata, dict) else metadata.exchange_id
    return str(httpx.get(f"{server.url}/v1/exchanges/{exchange_id}", params={"wait": 30}).json()["status"])


def memories(server: LiveServer, user: str) -> list[str]:
    return sorted(r["memory"] for r in httpx.get(f"{server.url}/v1/memories", params={"user_id": user}).json()["results"])


def seed(claude: anthropic.Anthropic, server: LiveServer, user: str = "alice") -> None:
    said = claude.messages.create(model=MODEL, max_tokens=256, messages=[{"role": "user", "content": SEED}], extra_body={"user_id": user})
    assert learnt(server, said.metadata) == "learnt"


def test_restaurant_scenario_through_the_anthropic_sdk(claude: anthropic.Anthropic, anthropic_server: LiveServer,
                                                       upstream: ScriptedUpstream) -> None:
    said = claude.messages.create(model=MODEL, max_tokens=256, messages=[{"role": "user", "content": SEED}], extra_body={"user_id": "alice"})
    assert said.content[0].text == "Noted! Here is my suggestion." and said.type == "message"
    assert learnt(anthropic_server, said.metadata) == "learnt"
    assert memories(anthropic_server, "alice") == ["Is allergic to cheese", "Loves Indian food"]
    upstream.requests.clear()
    question = [{"role": "user", "content": DINNER}]
    resp = claude.messages.create(model=MODEL, max_tokens=256, system=SYSTEM, messages=question,
                                  extra_body={"user_id": "alice", "include_memories": True})
    (call,) = messages_calls(upstream)
    body = call.json
    assert body["system"] == SYSTEM, "the system prompt reaches the model unchanged"
    memory_block, own = body["messages"][-1]["content"]
    assert memory_block["type"] == "text" and MEMORY_PREAMBLE in memory_block["text"] and "Is allergic to cheese" in memory_block["text"]
    assert own == {"type": "text", "text": DINNER}, "the user's own text follows the block, unchanged"
    assert question == [{"role": "user", "content": DINNER}], "the caller's messages are never changed"
    assert {m["memory"] for m in resp.metadata["memories"]} == {"Is allergic to cheese", "Loves Indian food"}
    assert "user_id" not in body and "include_memories" not in body, "memlane's fields never go upstream"
    assert call.api_key == UPSTREAM_KEY, "memlane calls the model with its own Anthropic key"
    upstream.requests.clear()
    claude.messages.create(model=MODEL, max_tokens=256, messages=question, extra_headers={"X-Memlane-User-Id": "bob"})
    assert MEMORY_PREAMBLE not in json.dumps(messages_calls(upstream)[0].json), "bob never sees alice's memories"


def test_a_stream_passes_anthropics_events_through_and_is_learnt_from(claude: anthropic.Anthropic, anthropic_server: LiveServer,
                                                                     upstream: ScriptedUpstream) -> None:
    events = list(claude.messages.create(model=MODEL, max_tokens=256, stream=True, messages=[{"role": "user", "content": SEED}],
                                         extra_body={"user_id": "dave"}))
    assert [e.type for e in events] == ["message_start", "content_block_start", *["content_block_delta"] * 5, "content_block_stop",
                                        "message_delta", "message_stop"]
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "Noted! Here is my suggestion."
    assert learnt(anthropic_server, events[0].message.metadata) == "learnt"
    assert memories(anthropic_server, "dave") == ["Is allergic to cheese", "Loves Indian food"]
    with claude.messages.stream(model=MODEL, max_tokens=256, messages=[{"role": "user", "content": DINNER}],
                                extra_body={"user_id": "dave", "include_memories": True}) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Noted! Here is my suggestion." and final.content[0].text == text
    assert {m["memory"] for m in final.metadata["memories"]} == {"Is allergic to cheese", "Loves Indian food"}
    assert learnt(anthropic_server, final.metadata) == "learnt"
    extract = upstream.model_requests("extract")[-1]
    assert "Noted! Here is my suggestion." in extract.last_user_text, "learnt from the streamed text"
    # the bytes: Anthropic's named events, the metadata on message_start's message, no [DONE]
    with httpx.stream("POST", f"{anthropic_server.url}/v1/messages", json={
            "model": MODEL, "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "hello"}], "user_id": "dave"},
                          timeout=30) as r:  # the stream ends after its outbox write: httpx's 5 s timed out once under load 7
        assert r.headers["content-type"].startswith("text/event-stream")
        wire = "".join(r.iter_text())
    frames = [f.split("\n") for f in wire.split("\n\n") if f]
    assert all(kind.startswith("event: ") and data.startswith("data: ") for kind, data in frames) and "[DONE]" not in wire
    payloads = [(kind[7:], json.loads(data[6:])) for kind, data in frames]
    assert all(name == p["type"] for name, p in payloads) and payloads[-1][0] == "message_stop"
    assert payloads[0][1]["message"]["metadata"]["exchange_id"]


def test_the_async_sdk(anthropic_server: LiveServer, upstream: ScriptedUpstream) -> None:
    async def run() -> list[Any]:
        client = anthropic.AsyncAnthropic(base_url=anthropic_server.url, api_key="x", max_retries=0)
        resp = await client.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": SEED}], extra_body={"user_id": "eve"})
        assert resp.content[0].text == "Noted! Here is my suggestion."
        async with client.messages.stream(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}],
                                          extra_body={"user_id": "eve"}) as stream:
            assert "".join([t async for t in stream.text_stream]) == "Noted! Here is my suggestion."
            final = await stream.get_final_message()
        await client.close()
        return [resp.metadata, final.metadata]

    for metadata in asyncio.run(run()):
        assert learnt(anthropic_server, metadata) == "learnt"
    assert memories(anthropic_server, "eve") == ["Is allergic to cheese", "Loves Indian food"]


def test_tool_use_and_tool_results_pass_through_and_are_never_learnt_as_user_facts(
        claude: anthropic.Anthropic, anthropic_server: LiveServer, upstream: ScriptedUpstream) -> None:
    tools = [{"name": "guest_notes", "description": "Notes on a guest", "input_schema": {"type": "object", "properties": {}}}]
    upstream.queue(Reply.tools([{"name": "guest_notes", "arguments": {"guest": "frank"}}]))
    first = claude.messages.create(model=MODEL, max_tokens=256, tools=tools, messages=[{"role": "user", "content": "Book a table for me."}],
                                   extra_body={"user_id": "frank"})
    (use,) = [b for b in first.content if b.type == "tool_use"]
    assert use.name == "guest_notes" and use.input == {"guest": "frank"} and first.stop_reason == "tool_use"
    assert learnt(anthropic_server, first.metadata) == "learnt"
    conversation = [
        {"role": "user", "content": "Book a table for me."},
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                      "content": [{"type": "text", "text": "The guest is allergic to cheese and loves Indian food."}]}]},
    ]
    sent = json.loads(json.dumps(conversation))
    upstream.requests.clear()
    answer = claude.messages.create(model=MODEL, max_tokens=256, tools=tools, messages=conversation, extra_body={"user_id": "frank"})
    assert learnt(anthropic_server, answer.metadata) == "learnt"
    body = messages_calls(upstream)[0].json
    assert body["tools"] == tools and body["messages"] == sent, "tool_use and tool_result blocks reach the model untouched"
    assert memories(anthropic_server, "frank") == [], "a tool's result is not the user telling memlane a fact"
    (extract,) = upstream.model_requests("extract")
    assert "allergic" not in extract.last_user_text


def test_images_reach_the_model_untouched_and_only_text_is_learnt(claude: anthropic.Anthropic, anthropic_server: LiveServer,
                                                                 upstream: ScriptedUpstream) -> None:
    seed(claude, anthropic_server, "gina")
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": base64.b64encode(b"\x89PNG\r\n\x1a\n-a-picture-of-a-menu").decode()}}
    text = {"type": "text", "text": "Suggest a dinner from this menu in San Francisco."}
    upstream.requests.clear()
    resp = claude.messages.create(model=MODEL, max_tokens=256, messages=[{"role": "user", "content": [image, text]}],
                                  extra_body={"user_id": "gina"})
    block, *own = messages_calls(upstream)[0].json["messages"][0]["content"]
    assert "Is allergic to cheese" in block["text"] and own == [image, text]
    assert learnt(anthropic_server, resp.metadata) == "learnt"
    extract = upstream.model_requests("extract")[-1]
    assert image["source"]["data"] not in extract.body.decode() and "this menu" in extract.last_user_text


def test_anthropics_own_metadata_and_headers_reach_the_model(claude: anthropic.Anthropic, upstream: ScriptedUpstream) -> None:
    claude.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}], metadata={"user_id": "end-user-7"},
                           extra_headers={"anthropic-beta": "prompt-caching-2024-07-31", "anthropic-version": "2023-06-01"},
                           extra_body={"user_id": "hank", "top_p": 0.5, "timeout": 3, "extra_headers": {"x-api-key": "mine"}})
    (call,) = messages_calls(upstream)
    assert call.json["metadata"] == {"user_id": "end-user-7"} and call.json["top_p"] == 0.5
    assert call.json["timeout"] == 3 and call.json["extra_headers"] == {"x-api-key": "mine"} and call.api_key == UPSTREAM_KEY, \
        "a body field named like an SDK option is a body field, never the SDK's option"
    assert call.headers["anthropic-beta"] == "prompt-caching-2024-07-31" and call.headers["anthropic-version"] == "2023-06-01"


def test_count_tokens_passes_through(claude: anthropic.Anthropic, upstream: ScriptedUpstream) -> None:
    counted = claude.messages.count_tokens(model=MODEL, system=SYSTEM, messages=[{"role": "user", "content": DINNER}],
                                           extra_body={"user_id": "alice"})
    assert counted.input_tokens == len(SYSTEM.split()) + len(DINNER.split())
    (call,) = [r for r in upstream.requests if r.path == "/v1/messages/count_tokens"]
    assert "user_id" not in call.json and call.api_key == UPSTREAM_KEY


def test_each_request_repeats_the_previous_one_as_its_prefix(claude: anthropic.Anthropic, anthropic_server: LiveServer,
                                                             upstream: ScriptedUpstream) -> None:
    """Pinned placement: each user turn keeps the block it was first sent with, so ``system``
    and every earlier turn are byte-identical from one request to the next (Anthropic's cache)."""
    seed(claude, anthropic_server)
    upstream.requests.clear()
    history: list[dict[str, Any]] = []
    for question in (DINNER, "Something near the Mission?", "And for a friend who loves cheese?"):
        history.append({"role": "user", "content": question})
        reply = claude.messages.create(model=MODEL, max_tokens=256, system=SYSTEM, messages=history, extra_body={"user_id": "alice"})
        history.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]})
    bodies = [r.body for r in messages_calls(upstream)]
    assert len(bodies) == 3
    for before, after in zip(bodies, bodies[1:]):
        tail = before[len(os.path.commonprefix([before, after])):]
        # the SDK writes the fields in name order: messages, then model and system, the same each time
        assert tail == b'],"model":"%s","system":"%s"}' % (MODEL.encode(), SYSTEM.encode()), f"only the end differs: {tail!r}"
        assert json.loads(before)["system"] == json.loads(after)["system"] == SYSTEM
    first, *later = [m["content"] for m in json.loads(bodies[-1])["messages"] if m["role"] == "user"]
    assert MEMORY_PREAMBLE in first[0]["text"] and first[1] == {"type": "text", "text": DINNER}
    assert later == ["Something near the Mission?", "And for a friend who loves cheese?"], "nothing new to recall: no second block"


def test_errors_are_in_anthropics_envelope(make_server: Callable[..., LiveServer], upstream: ScriptedUpstream, tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys.db")
    key, _ = keys.create("default")
    server = make_server(keys=keys, limits=Limits(max_body_bytes=4096), upstream=upstream_section(upstream))
    ask = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}

    with pytest.raises(anthropic.AuthenticationError) as refused:
        anthropic.Anthropic(base_url=server.url, api_key="ml-wrong-key-123456", max_retries=0).messages.create(**ask)
    assert refused.value.status_code == 401 and refused.value.body["error"]["type"] == "authentication_error"
    r = httpx.post(f"{server.url}/v1/messages", json=ask, headers={"x-api-key": "ml-wrong-key-123456"})
    assert r.status_code == 401 and r.json()["type"] == "error"

    claude = anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0)
    assert claude.messages.create(**ask).content[0].text, "the key as Authorization: Bearer"
    assert httpx.post(f"{server.url}/v1/messages", json=ask, headers={"x-api-key": key}).status_code == 200, "the key as x-api-key"

    def refusal(status: int, kind: str, **request: Any) -> str:
        r = httpx.request(request.pop("method", "POST"), f"{server.url}{request.pop('path', '/v1/messages')}",
                          headers={"x-api-key": key, **request.pop("headers", {})}, **request)
        assert r.status_code == status, r.text
        body = r.json()
        assert body["type"] == "error" and set(body["error"]) == {"type", "message"} and body["error"]["type"] == kind, body
        return str(body["error"]["message"])

    assert "max_tokens" in refusal(400, "invalid_request_error", json={**ask, "max_tokens": None})
    assert "JSON" in refusal(400, "invalid_request_error", content=b"{not json", headers={"content-type": "application/json"})
    assert "system" in refusal(400, "invalid_request_error", json={**ask, "messages": [{"role": "system", "content": "x"}]})
    assert "limit" in refusal(400, "invalid_request_error", json={**ask, "user_id": "a", "limit": 0})
    refusal(415, "invalid_request_error", content=b"{}", headers={"content-type": "text/plain"})
    refusal(413, "request_too_large", json={**ask, "messages": [{"role": "user", "content": "x" * 8000}]})
    refusal(404, "not_found_error", path="/v1/messages/nowhere")
    refusal(405, "invalid_request_error", method="GET")
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.create(model=MODEL, max_tokens=64, messages=[])
    assert bad.value.body["error"]["type"] == "invalid_request_error"

    # the upstream's own errors keep their status and body
    upstream.queue(Reply.error(429, "Number of requests has exceeded your rate limit", type="rate_limit_error", headers={"retry-after": "7"}))
    with pytest.raises(anthropic.RateLimitError) as limited:
        claude.messages.create(**ask, extra_body={"user_id": "alice"})
    assert limited.value.body["error"] == {"type": "rate_limit_error", "message": "Number of requests has exceeded your rate limit"}
    assert limited.value.response.headers["retry-after"] == "7"
    upstream.queue(Reply.error(529, "Overloaded", type="overloaded_error"))
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        claude.messages.create(**ask)
    assert overloaded.value.status_code == 529 and overloaded.value.body["error"]["type"] == "overloaded_error"
    # the upstream refusing memlane's own key is memlane's 502, the key it echoes scrubbed
    upstream.queue(Reply.error(401, f"invalid x-api-key {UPSTREAM_KEY}", type="authentication_error"))
    with pytest.raises(anthropic.APIStatusError) as upstream_auth:
        claude.messages.create(**ask)
    assert upstream_auth.value.status_code == 502 and upstream_auth.value.body["error"]["type"] == "api_error"
    assert UPSTREAM_KEY not in upstream_auth.value.response.text


def test_no_anthropic_upstream_is_a_clear_503_naming_the_settings(make_server: Callable[..., LiveServer], upstream: ScriptedUpstream) -> None:
    ask = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(f"{make_server().url}/v1/messages", json=ask)
    assert r.status_code == 503 and r.json()["error"]["type"] == "api_error"
    assert "ANTHROPIC_API_KEY" in r.json()["error"]["message"] and "upstream.anthropic_base_url" in r.json()["error"]["message"]
    unreachable = make_server(upstream=upstream_section(upstream, anthropic_base_url="http://127.0.0.1:9", connect_timeout=1))
    r = httpx.post(f"{unreachable.url}/v1/messages", json={**ask, "user_id": "alice"})
    assert r.status_code == 502 and r.json()["error"] == {"type": "api_error", "message": "cannot reach the upstream model server (its address is in memlane's log)"}


def test_a_stream_the_upstream_breaks_off_ends_in_an_error_event(claude: anthropic.Anthropic, anthropic_server: LiveServer,
                                                                 upstream: ScriptedUpstream) -> None:
    upstream.queue(Reply.text("This is a long answer that breaks off", reset_after=2))
    got = ""
    with pytest.raises(anthropic.APIStatusError, match="broke off the stream"):
        for event in claude.messages.create(model=MODEL, max_tokens=64, stream=True, messages=[{"role": "user", "content": "hi"}],
                                            extra_body={"user_id": "ivan"}):
            got += event.delta.text if event.type == "content_block_delta" else ""
    assert got == "This is "
    upstream.queue(Reply.text("This is a long answer that breaks off", reset_after=2))
    with pytest.raises(anthropic.APIStatusError, match="broke off the stream"):
        list(claude.messages.create(model=MODEL, max_tokens=64, stream=True, messages=[{"role": "user", "content": "hi"}]))  # no scope
    upstream.queue(Reply.text("This is a long answer that fails", error_after=2))
    seen = b""
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream("POST", anthropic_server.url + "/v1/messages", json={
                "model": MODEL, "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "hi"}], "user_id": "ivan"}) as r:
            for part in r.iter_bytes():
                seen += part
    last = seen.decode().strip().split("\n\n")[-1]
    assert last.startswith("event: error\ndata: ")
    assert json.loads(last.split("data: ", 1)[1]) == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    time.sleep(0.3)
    assert upstream.model_requests("extract") == [], "a broken answer is never learnt from"


def test_a_broken_embedder_never_breaks_a_message(make_server: Callable[..., LiveServer], upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    server = make_server(upstream=upstream_section(upstream),
                         embedder={"provider": "openai", "config": {"base_url": "http://127.0.0.1:9/v1", "api_key": "k", "max_retries": 0, "timeout": 1}})
    claude = anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0)
    resp = claude.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": DINNER}],
                                  extra_body={"user_id": "alice", "include_memories": True})
    assert resp.content[0].text == "Noted! Here is my suggestion." and resp.metadata["memories"] == []
    with claude.messages.stream(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": DINNER}], extra_body={"user_id": "alice"}) as s:
        assert "".join(s.text_stream) == "Noted! Here is my suggestion."


def test_the_docs_page_runs_as_written(anthropic_server: LiveServer, upstream: ScriptedUpstream, capsys: pytest.CaptureFixture[str]) -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "anthropic.md").read_text()
    (sample,) = re.findall(r"```python\n(.*?)```", page, re.S)
    exec(sample.replace("http://127.0.0.1:8765", anthropic_server.url), {})
    printed = capsys.readouterr().out
    assert "['Loves Indian food', 'Is allergic to cheese']" in printed or "['Is allergic to cheese', 'Loves Indian food']" in printed
    dinner = [r for r in messages_calls(upstream) if DINNER in r.last_user_text][0]
    assert "Is allergic to cheese" in dinner.json["messages"][-1]["content"][0]["text"]
