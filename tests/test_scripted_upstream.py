"""The scripted upstream must be a faithful OpenAI protocol double: what it emits validates
against OpenAI's own OpenAPI spec, and the real openai SDK parses it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

from memlane.testing import Reply, ScriptedUpstream, openai_spec

# OpenAI's published spec (MIT, licence beside it), vendored so a fresh clone can validate.
SPEC_PATH = Path(__file__).resolve().parent / "specs" / "openai-openapi.json"


@pytest.fixture(scope="module")
def validate() -> Any:
    if not SPEC_PATH.exists():
        pytest.fail(f"OpenAI spec not found at {SPEC_PATH}")

    def check(instance: Any, schema_name: str) -> None:
        openai_spec.validate(instance, schema_name, SPEC_PATH)

    return check


def test_chat_completion_validates_and_parses(upstream: ScriptedUpstream, validate: Any) -> None:
    client = openai.OpenAI(base_url=upstream.url, api_key="k")
    upstream.queue(Reply.text("Hello there"))
    resp = client.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "hi"}], n=2)
    validate(json.loads(resp.text), "CreateChatCompletionResponse")
    parsed = resp.parse()
    assert [c.message.content for c in parsed.choices] == ["Hello there", "Hello there"]


def test_stream_chunks_validate_and_carry_usage(upstream: ScriptedUpstream, validate: Any) -> None:
    client = openai.OpenAI(base_url=upstream.url, api_key="k")
    upstream.queue(Reply.text("one two three"))
    raw = client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True})
    lines = [line for line in raw.http_response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    for chunk in chunks:
        validate(chunk, "CreateChatCompletionStreamResponse")
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "one two three"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


def test_tool_calls_and_errors(upstream: ScriptedUpstream, validate: Any) -> None:
    client = openai.OpenAI(base_url=upstream.url, api_key="k", max_retries=0)
    upstream.queue(Reply.tools([{"name": "get_weather", "arguments": {"city": "SF"}}]))
    resp = client.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": "weather?"}])
    validate(json.loads(resp.text), "CreateChatCompletionResponse")
    call = resp.parse().choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "SF"}
    upstream.queue(Reply.error(429, "slow down", type="rate_limit_error", code="rate_limit_exceeded"))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    validate(info.value.response.json(), "ErrorResponse")
    assert info.value.status_code == 429 and info.value.code == "rate_limit_exceeded"


def test_embeddings_and_models(upstream: ScriptedUpstream, validate: Any) -> None:
    client = openai.OpenAI(base_url=upstream.url, api_key="k")
    raw = client.embeddings.with_raw_response.create(model="e", input=["a", "b"])
    validate(json.loads(raw.text), "CreateEmbeddingResponse")
    assert [m.id for m in client.models.list()] == upstream.models


def test_validator_rejects_what_the_spec_rejects() -> None:
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):
        openai_spec.validate({"id": "x", "object": "chat.completion", "choices": []}, "CreateChatCompletionResponse", SPEC_PATH)


def test_it_tells_which_connections_are_open_busy_or_idle() -> None:
    import threading

    import httpx

    from tests.threads import wait_until

    with ScriptedUpstream() as up:
        up.handler = lambda req: Reply.text("slow", delay=30) if req.last_user_text == "wait" else None
        chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(base_url=up.url) as kept:
            kept.post("/chat/completions", json=chat).raise_for_status()
            assert wait_until(lambda: [(c.busy, c.last and c.last.stage) for c in up.open_connections()] == [(False, "chat")], 5)
        assert wait_until(lambda: up.open_connections() == [], 5), "closed when the caller closes it"
        leaving = threading.Thread(target=lambda: pytest.raises(httpx.ReadTimeout, httpx.post, up.url + "/chat/completions",
                                                               json={**chat, "messages": [{"role": "user", "content": "wait"}]},
                                                               timeout=0.5))
        leaving.start()
        assert wait_until(lambda: [c.busy for c in up.open_connections()] == [True], 5)
        leaving.join()
        assert wait_until(lambda: up.open_connections() == [], 5) and up.chat_requests()[-1].abandoned
