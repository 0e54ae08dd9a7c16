"""Any OpenAI SDK gets memory by changing its base_url: the real openai SDK against a real
uvicorn serving memlane, which talks to the scripted upstream."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import openai
import pytest

from memlane.testing import Reply, ScriptedUpstream, openai_spec
from memlane.testing.live_server import LiveServer
from tests.scenarios import SPEC_PATH

SEED = "I love Indian food but I'm allergic to cheese."
DINNER = "Suggest dinner options in San Francisco."


def wait_learnt(sdk: openai.OpenAI, server: LiveServer, user: str, count: int) -> list[str]:
    deadline = time.monotonic() + 30
    while True:
        found = httpx.get(f"{server.url}/v1/memories", params={"user_id": user}).json()["results"]
        if len(found) >= count or time.monotonic() > deadline:
            return sorted(r["memory"] for r in found)
        time.sleep(0.05)


def test_restaurant_scenario_through_the_openai_sdk(sdk: openai.OpenAI, server: LiveServer, upstream: ScriptedUpstream) -> None:
    raw = sdk.chat.completions.with_raw_response.create(
        model="gpt-4.1-nano", messages=[{"role": "user", "content": SEED}], extra_body={"user_id": "alice", "metadata": {"source": "web"}})
    openai_spec.validate(json.loads(raw.text), "CreateChatCompletionResponse", SPEC_PATH)
    assert raw.parse().choices[0].message.content == "Noted! Here is my suggestion."
    assert wait_learnt(sdk, server, "alice", 2) == ["Is allergic to cheese", "Loves Indian food"]
    upstream.requests.clear()
    resp = sdk.chat.completions.create(model="gpt-4.1-nano", messages=[{"role": "user", "content": DINNER}],
                                       extra_body={"user_id": "alice", "include_memories": True})
    (chat,) = upstream.chat_requests("chat")
    assert "Is allergic to cheese" in chat.messages[0]["content"] and chat.messages[-1]["content"] == DINNER
    memories = resp.metadata["memories"]
    assert {m["memory"] for m in memories} == {"Is allergic to cheese", "Loves Indian food"}
    assert "user_id" not in chat.json and "include_memories" not in chat.json, "memlane fields never go upstream"
    upstream.requests.clear()
    sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": DINNER}], extra_headers={"X-Memlane-User-Id": "bob"})
    assert "<memories>" not in json.dumps(upstream.chat_requests("chat")[0].messages)


def test_scope_by_header(sdk: openai.OpenAI, server: LiveServer, upstream: ScriptedUpstream) -> None:
    sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": SEED}], extra_headers={"X-Memlane-User-Id": "carol"})
    assert wait_learnt(sdk, server, "carol", 2) == ["Is allergic to cheese", "Loves Indian food"]


def test_openai_parameters_pass_through(sdk: openai.OpenAI, upstream: ScriptedUpstream) -> None:
    params: dict[str, Any] = {"temperature": 0.3, "n": 2, "seed": 7, "max_completion_tokens": 50, "logprobs": True, "top_logprobs": 1,
                              "response_format": {"type": "json_object"}, "user": "end-user", "stop": ["x"],
                              "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}], "tool_choice": "none"}
    sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], extra_body={"user_id": "alice"}, **params)
    body = upstream.chat_requests("chat")[0].json
    assert {k: v for k, v in body.items() if k not in ("model", "messages")} == params


def test_streaming_is_openai_sse(server: LiveServer, sdk: openai.OpenAI, upstream: ScriptedUpstream) -> None:
    stream = sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "I love Indian food"}], stream=True,
                                         stream_options={"include_usage": True}, extra_body={"user_id": "dave"})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Noted! Here is my suggestion."
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    assert wait_learnt(sdk, server, "dave", 1) == ["Loves Indian food"]
    # the raw bytes: data lines, blank-line separated, [DONE] last; every chunk valid against the spec
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json={
            "model": "m", "messages": [{"role": "user", "content": "hello"}], "stream": True, "user_id": "dave", "include_memories": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    events = [e for e in text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    payloads = [json.loads(e[6:]) for e in events[:-1]]
    assert payloads[0]["metadata"]["memories"][0]["memory"] == "Loves Indian food"
    for p in payloads:
        p.pop("metadata", None)
        openai_spec.validate(p, "CreateChatCompletionStreamResponse", SPEC_PATH)


def test_async_sdk(server: LiveServer, upstream: ScriptedUpstream) -> None:
    async def run() -> None:
        client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
        resp = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], extra_body={"user_id": "eve"})
        assert resp.choices[0].message.content
        stream = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True, extra_body={"user_id": "eve"})
        assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        await client.close()

    asyncio.run(run())


def test_models_are_the_upstreams(sdk: openai.OpenAI, upstream: ScriptedUpstream) -> None:
    assert [m.id for m in sdk.models.list()] == upstream.models


@pytest.mark.parametrize("status,error", [(429, openai.RateLimitError), (500, openai.InternalServerError), (400, openai.BadRequestError)])
def test_upstream_errors_pass_through(sdk: openai.OpenAI, upstream: ScriptedUpstream, status: int, error: type) -> None:
    upstream.queue(Reply.error(status, "upstream refused", type="upstream_type", code="upstream_code"))
    with pytest.raises(error) as info:
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], extra_body={"user_id": "alice"})
    assert info.value.status_code == status
    assert info.value.body == {"message": "upstream refused", "type": "upstream_type", "param": None, "code": "upstream_code"}


def test_bad_requests_get_the_error_envelope(server: LiveServer) -> None:
    cases = [
        (b"{not json", 400, "invalid_json"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(), 400, "missing_model"),
        (json.dumps({"model": "m", "messages": []}).encode(), 400, "invalid_messages"),
        (json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}], "user_id": "a", "filters": {"k": {"like": 1}}}).encode(), 400, "filter"),
        (json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}], "user_id": "a", "limit": 0}).encode(), 400, "validation"),
    ]
    for body, status, code in cases:
        r = httpx.post(f"{server.url}/v1/chat/completions", content=body, headers={"content-type": "application/json"})
        assert r.status_code == status, r.text
        error = r.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["code"] == code
        openai_spec.validate(r.json(), "ErrorResponse", SPEC_PATH)
    r = httpx.get(f"{server.url}/v1/nowhere")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"


def test_a_stream_the_upstream_breaks_off_ends_in_an_error_never_a_clean_end(sdk: openai.OpenAI, server: LiveServer, upstream: ScriptedUpstream) -> None:
    """The upstream resets the connection mid-answer: the SDK raises (an in-band error event),
    and the response is aborted (no ``[DONE]``, no final chunk), so no client takes the
    truncated text for a whole answer."""
    upstream.queue(Reply.text("This is a long answer that breaks off", reset_after=2))
    got = ""
    with pytest.raises(openai.APIError, match="broke off the stream"):
        for chunk in sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True,
                                                 extra_body={"user_id": "alice"}):
            got += "".join(c.delta.content or "" for c in chunk.choices)
    assert got == "This is "
    upstream.queue(Reply.text("This is a long answer that breaks off", reset_after=2))
    seen = b""
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream("POST", server.url + "/v1/chat/completions", json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as r:
            for part in r.iter_bytes():
                seen += part
    events = [json.loads(line[6:]) for line in seen.decode().split("\n\n") if line.startswith("data: {")]
    assert b"[DONE]" not in seen and events[-1]["error"]["code"] == "upstream_stream_broken"
    openai_spec.validate(events[-1], "ErrorResponse", SPEC_PATH)
    time.sleep(0.3)
    assert upstream.chat_requests("extract") == [], "a broken answer is never learnt from"


def test_the_upstream_refusing_memlanes_key_is_a_502_of_memlanes_own_with_the_key_scrubbed(sdk: openai.OpenAI, upstream: ScriptedUpstream) -> None:
    """Not the caller's 401 (their memlane key is fine), and the echoed upstream key never reaches them."""
    for status in (401, 403):
        upstream.queue(Reply.error(status, "Incorrect API key provided: sk-proj-upstreamSECRET1234. Bearer upstream-key", type="invalid_request_error"))
        with pytest.raises(openai.APIStatusError) as info:
            sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], extra_body={"user_id": "alice"})
        assert info.value.status_code == 502 and not isinstance(info.value, openai.AuthenticationError)
        assert info.value.body["code"] == "upstream_auth_failed"
        assert "SECRET" not in str(info.value.body) and "upstream-key" not in str(info.value.body)
    upstream.queue(Reply.error(429, "Rate limit for key sk-proj-upstreamSECRET1234 reached", type="requests", code="rate_limit_exceeded"))
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert "SECRET" not in limited.value.message and limited.value.body["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize("reply", [Reply.raw("not json at all"), Reply.raw('{"foo": 1}'), Reply.raw("<html>busy</html>", content_type="text/html")],
                         ids=["not-json", "not-a-completion", "html"])
@pytest.mark.parametrize("scope", [{"user_id": "alice"}, {}], ids=["with-memory", "one-off"])
def test_an_upstream_answer_that_is_not_a_completion_is_a_502(sdk: openai.OpenAI, upstream: ScriptedUpstream, reply: Reply, scope: dict[str, str]) -> None:
    upstream.queue(reply)
    with pytest.raises(openai.APIStatusError) as info:
        sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], extra_body=scope)
    assert info.value.status_code == 502 and info.value.body["code"] == "upstream_error"


def test_embeddings_pass_through_to_the_upstream(sdk: openai.OpenAI, upstream: ScriptedUpstream) -> None:
    """Clients that use one base URL for everything (LangChain, agents) embed through memlane too."""
    direct = openai.OpenAI(base_url=upstream.url, api_key="k").embeddings.create(model="e", input=["Likes tea", "Plays chess"])
    through = sdk.embeddings.create(model="e", input=["Likes tea", "Plays chess"])
    assert [d.embedding for d in through.data] == [d.embedding for d in direct.data] and len(through.data) == 2
    assert upstream.requests[-1].path == "/v1/embeddings" and upstream.requests[-1].json["input"] == ["Likes tea", "Plays chess"]
    assert upstream.requests[-1].headers["authorization"] == "Bearer upstream-key", "memlane's upstream key, not the caller's"
    with pytest.raises(openai.BadRequestError):
        sdk.embeddings.create(model="", input="x")
