"""The memory LLM over the official openai SDK against the scripted server."""

from __future__ import annotations

import pytest

from memlane import ConfigError, LLMError
from memlane.engine import prompts
from memlane.llms.openai import OpenAILLM
from memlane.testing import Reply, ScriptedUpstream

HI = [{"role": "user", "content": "hi"}]
FACTS = prompts.extraction_task(200)


def test_json_mode_and_options_reach_the_server(upstream: ScriptedUpstream) -> None:
    llm = OpenAILLM({"base_url": upstream.url, "api_key": "k", "model": "m-1", "max_tokens": 99})
    upstream.queue(Reply.json({"facts": []}))
    assert llm.complete_json([{"role": "user", "content": "hi"}]) == '{"facts": []}'
    body = upstream.requests[-1].json
    assert body["response_format"] == {"type": "json_object"}
    assert body["model"] == "m-1" and body["max_tokens"] == 99 and body["temperature"] == 0.0
    assert upstream.requests[-1].headers["authorization"] == "Bearer k"


def test_json_mode_can_be_off_for_servers_without_it(upstream: ScriptedUpstream) -> None:
    llm = OpenAILLM({"base_url": upstream.url, "json_mode": False})
    llm.complete_json([{"role": "user", "content": "hi"}])
    assert "response_format" not in upstream.requests[-1].json
    assert upstream.requests[-1].headers["authorization"] == "Bearer memlane-no-key"


@pytest.mark.parametrize("status", [400, 429, 500])
def test_server_errors_become_llm_errors(upstream: ScriptedUpstream, status: int) -> None:
    llm = OpenAILLM({"base_url": upstream.url, "api_key": "k", "max_retries": 0})
    upstream.queue(Reply.error(status, "nope"))
    with pytest.raises(LLMError, match="memory LLM call failed"):
        llm.complete_json([{"role": "user", "content": "hi"}])


def test_unknown_option_is_named() -> None:
    with pytest.raises(ConfigError, match="llm.config.temprature"):
        OpenAILLM({"temprature": 0.2})


def test_a_task_asks_for_its_json_schema_and_sizes_max_tokens(upstream: ScriptedUpstream) -> None:
    llm = OpenAILLM({"base_url": upstream.url, "api_key": "k", "model": "m-1"})
    upstream.queue(Reply.json({"facts": []}))
    llm.complete_json(HI, task=FACTS)
    body = upstream.requests[-1].json
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "memory_facts", "schema": prompts.FACTS_SCHEMA, "strict": True}}
    assert body["max_tokens"] == FACTS.max_tokens
    capped = OpenAILLM({"base_url": upstream.url, "api_key": "k", "max_tokens": 50})
    upstream.queue(Reply.json({"facts": []}))
    capped.complete_json(HI, task=FACTS)
    assert upstream.requests[-1].json["max_tokens"] == 50, "the config's max_tokens caps every task"


@pytest.mark.parametrize("refusal", [
    "response_format json_schema is not supported by this server",  # vLLM without guided decoding, older llama.cpp
    "Unsupported value: 'response_format.type' does not support 'json_schema' with this model.",  # OpenAI, older models
])
def test_a_server_refusing_json_schema_is_asked_with_json_mode_then_plain_text_and_remembered(
        upstream: ScriptedUpstream, refusal: str, caplog: pytest.LogCaptureFixture) -> None:
    llm = OpenAILLM({"base_url": upstream.url, "api_key": "k", "model": "small"})
    upstream.queue(Reply.error(400, refusal), Reply.error(400, "response_format is not supported"), Reply.json({"facts": ["Likes tea"]}))
    with caplog.at_level("WARNING", logger="memlane.llm"):
        assert llm.complete_json(HI, task=FACTS) == '{"facts": ["Likes tea"]}'
    kinds = [r.json.get("response_format", {}).get("type") for r in upstream.requests]
    assert kinds == ["json_schema", "json_object", None]
    assert [r.getMessage() for r in caplog.records if "refused response_format" in r.getMessage()].__len__() == 2
    upstream.requests.clear()
    upstream.queue(Reply.json({"facts": []}))
    llm.complete_json(HI, task=FACTS)  # remembered: no more refused calls for this model
    assert [r.json.get("response_format") for r in upstream.requests] == [None]
    assert llm.format_for("other-model") == "json_schema", "remembered per model"


def test_other_bad_requests_are_not_taken_for_a_refused_format(upstream: ScriptedUpstream) -> None:
    llm = OpenAILLM({"base_url": upstream.url, "api_key": "k", "model": "m"})
    upstream.queue(Reply.error(400, "This model's maximum context length is 4096 tokens"))
    with pytest.raises(LLMError, match="maximum context length"):
        llm.complete_json(HI, task=FACTS)
    assert len(upstream.requests) == 1 and llm.format_for("m") == "json_schema"


def test_a_pinned_response_format_is_kept_even_when_refused(upstream: ScriptedUpstream) -> None:
    llm = OpenAILLM({"base_url": upstream.url, "api_key": "k", "response_format": "json_object"})
    upstream.queue(Reply.error(400, "response_format is not supported"))
    with pytest.raises(LLMError):
        llm.complete_json(HI, task=FACTS)
    assert [r.json["response_format"] for r in upstream.requests] == [{"type": "json_object"}]


@pytest.mark.parametrize("kind", ["json_schema", "json_object", "text"])
def test_the_request_is_byte_for_byte_what_chat_completions_create_sends(upstream: ScriptedUpstream, kind: str) -> None:
    """The call skips ``create``'s parameter transform (``client.post`` with memlane's own JSON):
    the model server must see the same body and headers as ``create`` would send."""
    import openai

    llm = OpenAILLM({"base_url": upstream.url, "api_key": "k", "model": "m-1", "max_tokens": 500, "response_format": kind})
    messages = [{"role": "system", "content": "Extract the facts, naïvely"}, {"role": "user", "content": "I'm vegetarian 🌱"}]
    upstream.queue(Reply.json({"facts": []}), Reply.json({"facts": []}))
    llm.complete_json(messages, task=FACTS)
    ours = upstream.requests[-1]
    kwargs = {"model": "m-1", "messages": messages, "temperature": 0.0, "max_tokens": min(500, FACTS.max_tokens)}
    if kind == "json_schema":
        kwargs["response_format"] = {"type": "json_schema", "json_schema": {"name": FACTS.name, "schema": FACTS.schema, "strict": True}}
    elif kind == "json_object":
        kwargs["response_format"] = {"type": "json_object"}
    llm.client.chat.completions.create(**kwargs)
    theirs = upstream.requests[-1]
    assert ours.body == theirs.body
    varying = {"x-stainless-retry-count"}
    assert {k: v for k, v in ours.headers.items() if k not in varying} == {k: v for k, v in theirs.headers.items() if k not in varying}
    assert isinstance(llm.client, openai.OpenAI)


@pytest.mark.parametrize("body, content_type", [
    ("<html><body>Welcome to nginx!</body></html>", "text/html"),  # a base_url that is a web server, not a model server
    ("[]", "application/json"),
    ('{"choices": [{"index": 0, "finish_reason": "stop"}]}', "application/json"),  # a choice without its message
    ('{"choices": [{"index": 0, "message": null}]}', "application/json"),
    ('{"choices": ["abc"]}', "application/json"),
])
def test_an_answer_that_is_no_chat_completion_is_an_llm_error(upstream: ScriptedUpstream, body: str, content_type: str) -> None:
    """A 200 whose body is not a chat completion (the SDK hands back a ``str``, a ``list``, or
    a completion missing its parts) is the memory LLM failing, like any other bad answer: an
    ``LLMError`` that names it (what the outbox's ``last_error`` and a face's 502 show), not
    an ``AttributeError`` from deep inside the call."""
    llm = OpenAILLM({"base_url": upstream.url, "api_key": "k"})
    upstream.queue(Reply.raw(body, content_type=content_type))
    with pytest.raises(LLMError, match="not a chat completion"):
        llm.complete_json(HI)
