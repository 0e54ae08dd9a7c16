"""The scripted upstream must be a faithful protocol double: what it emits in OpenAI's protocols
(chat completions, Responses) validates against OpenAI's own OpenAPI spec and the real openai SDK
parses it; what it emits in Anthropic's Messages protocol is what the real anthropic SDK reads,
streamed and not."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from memlane.testing import Reply, ScriptedUpstream, Turn, openai_spec

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
    delta = {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "hi", "sequence_number": 3}
    with pytest.raises(jsonschema.ValidationError, match="logprobs"):
        openai_spec.validate_event(delta, SPEC_PATH)
    assert openai_spec.validate_event({**delta, "logprobs": []}, SPEC_PATH) == "ResponseTextDeltaEvent"
    with pytest.raises(ValueError, match="response.made_up"):
        openai_spec.validate_event({"type": "response.made_up", "sequence_number": 0}, SPEC_PATH)


# -- OpenAI Responses ------------------------------------------------------------------------------


def sse_events(lines: Any) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs of a named-event SSE stream, from its lines."""
    events, name = [], None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
            name = None
    return events


SPEC = str(SPEC_PATH)


def test_responses_create_validates_and_parses(upstream: ScriptedUpstream, validate: Any) -> None:
    client = openai.OpenAI(base_url=upstream.url, api_key="k")
    upstream.queue(Reply.text("Try the mushroom risotto."))
    raw = client.responses.with_raw_response.create(model="gpt-4.1-nano", input="Dinner ideas?", instructions="Be brief.",
                                                    metadata={"app": "tests"}, temperature=0.2)
    body = json.loads(raw.text)
    validate(body, "Response")
    assert body["id"].startswith("resp_") and body["object"] == "response" and body["status"] == "completed"
    assert body["instructions"] == "Be brief." and body["metadata"] == {"app": "tests"} and body["temperature"] == 0.2
    parsed = raw.parse()
    assert parsed.output_text == "Try the mushroom risotto." and parsed.output[0].type == "message"
    assert parsed.usage is not None and parsed.usage.input_tokens == 4 and parsed.usage.output_tokens == 4
    req = upstream.model_requests(protocol="responses")[0]
    assert req.protocol == "responses" and req.stage == "chat" and req.last_user_text == "Dinner ideas?"
    assert [(t.role, t.text) for t in req.turns] == [("system", "Be brief."), ("user", "Dinner ideas?")]
    assert req.messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Dinner ideas?"}]


def test_responses_stream_events_validate_in_order(upstream: ScriptedUpstream) -> None:
    client = openai.OpenAI(base_url=upstream.url, api_key="k")
    upstream.queue(Reply.text("one two three"))
    raw = client.responses.with_raw_response.create(model="m", input=[{"role": "user", "content": "count"}], stream=True)
    events = sse_events(raw.http_response.iter_lines())
    for name, data in events:
        assert name == data["type"]
        openai_spec.validate_event(data, SPEC)
    assert [d["sequence_number"] for _, d in events] == list(range(len(events)))
    assert [n for n, _ in events] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        *["response.output_text.delta"] * 3, "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed"]
    assert "".join(d["delta"] for n, d in events if n == "response.output_text.delta") == "one two three"
    done = events[-1][1]["response"]
    assert done["status"] == "completed" and done["output"][0]["content"][0]["text"] == "one two three"
    assert {d["response"]["id"] for n, d in events if "response" in d} == {done["id"]}

    # the SDK's own readers: the event iterator and the accumulating stream helper
    upstream.queue(Reply.text("Streaming works."), Reply.text("Streaming works."))
    seen = [e.type for e in client.responses.create(model="m", input="hi", stream=True)]
    assert seen[0] == "response.created" and seen[-1] == "response.completed"
    with client.responses.stream(model="m", input="hi") as stream:
        assert "".join(e.delta for e in stream if e.type == "response.output_text.delta") == "Streaming works."
        assert stream.get_final_response().output_text == "Streaming works."


def test_responses_function_calls(upstream: ScriptedUpstream, validate: Any) -> None:
    client = openai.OpenAI(base_url=upstream.url, api_key="k")
    tools: Any = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    upstream.queue(Reply.tools([{"name": "get_weather", "arguments": {"city": "SF"}}]))
    raw = client.responses.with_raw_response.create(model="m", input="Weather in SF?", tools=tools)
    validate(json.loads(raw.text), "Response")
    call = raw.parse().output[0]
    assert call.type == "function_call" and call.name == "get_weather" and json.loads(call.arguments) == {"city": "SF"}
    assert call.call_id.startswith("call_") and call.id is not None and call.id.startswith("fc_")

    upstream.queue(Reply.tools([{"name": "get_weather", "arguments": {"city": "SF"}}]))
    raw = client.responses.with_raw_response.create(model="m", input="Weather in SF?", tools=tools, stream=True)
    events = sse_events(raw.http_response.iter_lines())
    for _, data in events:
        openai_spec.validate_event(data, SPEC)
    names = [n for n, _ in events]
    assert "response.function_call_arguments.delta" in names and "response.output_text.delta" not in names
    assert json.loads("".join(d["delta"] for n, d in events if n == "response.function_call_arguments.delta")) == {"city": "SF"}

    # the function's output goes back as input items; the double reads them as tool turns
    upstream.queue(Reply.tools([{"name": "get_weather", "arguments": {"city": "SF"}}]), Reply.text("Sunny, 18°C."))
    with client.responses.stream(model="m", input="Weather in SF?", tools=tools) as stream:
        call = next(item for item in stream.get_final_response().output if item.type == "function_call")
    answer = client.responses.create(model="m", tools=tools, input=[
        {"role": "user", "content": [{"type": "input_text", "text": "Weather in SF?"}]},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 18C"}])
    assert answer.output_text == "Sunny, 18°C."
    req = upstream.model_requests(protocol="responses")[-1]
    assert [(t.role, t.kind) for t in req.turns] == [("user", "message"), ("assistant", "function_call"), ("tool", "function_call_output")]
    assert req.last_user_text == "Weather in SF?" and req.turns[-1].text == "sunny, 18C"


def test_responses_state_and_errors(upstream: ScriptedUpstream, validate: Any) -> None:
    client = openai.OpenAI(base_url=upstream.url, api_key="k", max_retries=0)
    first = client.responses.create(model="m", input="My name is Ada.")
    assert client.responses.retrieve(first.id).output_text == first.output_text
    second = client.responses.create(model="m", input="What is my name?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    with pytest.raises(openai.BadRequestError) as info:  # as OpenAI: an unknown previous response is refused
        client.responses.create(model="m", input="x", previous_response_id="resp_unknown")
    validate(info.value.response.json(), "ErrorResponse")
    assert info.value.code == "previous_response_not_found" and info.value.param == "previous_response_id"
    unstored = client.responses.create(model="m", input="x", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    with pytest.raises(openai.BadRequestError, match="model"):
        client.post("/responses", body={"input": "no model"}, cast_to=object)

    upstream.queue(Reply.error(429, "slow down", type="rate_limit_error", code="rate_limit_exceeded"))
    with pytest.raises(openai.RateLimitError) as rate:
        client.responses.create(model="m", input="hi")
    validate(rate.value.response.json(), "ErrorResponse")
    assert rate.value.code == "rate_limit_exceeded"
    assert client.responses.input_tokens.count(model="m", input="one two three", instructions="four").input_tokens == 4
    refused = [r for r in upstream.model_requests() if r.reply is None]  # answered by the double, not the script
    assert [r.json.get("previous_response_id") for r in refused] == ["resp_unknown", None] and "model" not in refused[1].json


def test_responses_incomplete_and_failed_streams(upstream: ScriptedUpstream, validate: Any) -> None:
    client = openai.OpenAI(base_url=upstream.url, api_key="k", max_retries=0)
    upstream.queue(Reply.text("cut sho", finish_reason="length"))
    raw = client.responses.with_raw_response.create(model="m", input="long story")
    validate(json.loads(raw.text), "Response")
    cut = raw.parse()
    assert cut.status == "incomplete" and cut.incomplete_details is not None and cut.incomplete_details.reason == "max_output_tokens"

    upstream.queue(Reply.text("one two three four", error_after=2))
    raw = client.responses.with_raw_response.create(model="m", input="x", stream=True)
    events = sse_events(raw.http_response.iter_lines())
    for _, data in events:
        openai_spec.validate_event(data, SPEC)
    assert [d["delta"] for n, d in events if n == "response.output_text.delta"] == ["one ", "two "]
    assert events[-1][0] == "response.failed" and events[-1][1]["response"]["error"]["code"] == "server_error"


# -- Anthropic Messages ----------------------------------------------------------------------------


def claude(upstream: ScriptedUpstream, **kw: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=upstream.anthropic_url, api_key="sk-ant-test", max_retries=0, **kw)


def test_messages_create_parses_and_records_headers(upstream: ScriptedUpstream) -> None:
    upstream.queue(Reply.text("Try the mushroom risotto."))
    message = claude(upstream).messages.create(
        model="claude-sonnet-4-5", max_tokens=256,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                  {"role": "user", "content": [{"type": "text", "text": "Dinner ideas?"},
                                               {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}])
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert message.model == "claude-sonnet-4-5" and message.stop_reason == "end_turn" and message.stop_sequence is None
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", "Try the mushroom risotto.")]
    assert message.usage.input_tokens == 6 and message.usage.output_tokens == 4  # words, all turns
    req = upstream.model_requests(protocol="messages")[0]
    assert req.api_key == "sk-ant-test" and req.headers["anthropic-version"]  # anthropic 2.x sends it as a bearer token
    assert req.protocol == "messages" and req.stage == "chat" and req.last_user_text == "Dinner ideas?"
    assert [(t.role, t.text) for t in req.turns] == [("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!"), ("user", "Dinner ideas?")]
    assert req.json["messages"][-1]["content"][1]["type"] == "image"  # the raw body keeps what turns leave out


def test_messages_headers_as_sent_over_the_wire(upstream: ScriptedUpstream) -> None:
    """Anthropic's own header, as curl and older SDKs send it, is recorded as given."""
    import httpx

    headers = {"x-api-key": "sk-ant-curl", "anthropic-version": "2023-06-01", "anthropic-beta": "prompt-caching-2024-07-31"}
    got = httpx.post(upstream.anthropic_url + "/v1/messages", headers=headers,
                     json={"model": "c", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
    assert got.status_code == 200 and got.json()["type"] == "message" and got.headers["request-id"].startswith("req_")
    req = upstream.requests[-1]
    assert req.api_key == "sk-ant-curl" and req.headers["anthropic-version"] == "2023-06-01"
    assert req.headers["anthropic-beta"] == "prompt-caching-2024-07-31"


def test_messages_stream_events_in_order(upstream: ScriptedUpstream) -> None:
    client = claude(upstream)
    upstream.queue(Reply.text("one two three"))
    raw = client.messages.with_raw_response.create(model="c", max_tokens=64, messages=[{"role": "user", "content": "count"}], stream=True)
    assert raw.http_response.headers["content-type"] == "text/event-stream" and raw.http_response.headers["request-id"].startswith("req_")
    events = sse_events(raw.http_response.iter_lines())
    assert all(name == data["type"] for name, data in events)
    assert [n for n, _ in events] == ["message_start", "content_block_start", "ping", *["content_block_delta"] * 3,
                                      "content_block_stop", "message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["usage"]["input_tokens"] == 1
    assert [d["delta"] for n, d in events if n == "content_block_delta"][0] == {"type": "text_delta", "text": "one "}
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn" and events[-2][1]["usage"]["output_tokens"] == 3

    # the SDK's own readers: raw events from create(stream=True), and the accumulating helper
    upstream.queue(Reply.text("Streaming works."), Reply.text("Streaming works."))
    seen = [e.type for e in client.messages.create(model="c", max_tokens=64, messages=[{"role": "user", "content": "hi"}], stream=True)]
    assert seen == ["message_start", "content_block_start", "content_block_delta", "content_block_delta",
                    "content_block_stop", "message_delta", "message_stop"]  # the SDK drops pings
    with client.messages.stream(model="c", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as stream:
        assert "".join(stream.text_stream) == "Streaming works."
        final = stream.get_final_message()
    assert final.content[0].type == "text" and final.content[0].text == "Streaming works." and final.stop_reason == "end_turn"


def test_messages_tool_use(upstream: ScriptedUpstream) -> None:
    client = claude(upstream)
    tools: Any = [{"name": "get_weather", "description": "Weather now", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    upstream.queue(Reply.tools([{"name": "get_weather", "arguments": {"city": "SF"}}]))
    message = client.messages.create(model="c", max_tokens=64, tools=tools, messages=[{"role": "user", "content": "Weather in SF?"}])
    use = message.content[-1]
    assert message.stop_reason == "tool_use" and use.type == "tool_use" and use.id.startswith("toolu_")
    assert use.name == "get_weather" and use.input == {"city": "SF"}

    upstream.queue(Reply(content="Let me check.", tool_calls=Reply.tools([{"name": "get_weather", "arguments": {"city": "SF"}}]).tool_calls,
                         finish_reason="tool_calls"))
    with client.messages.stream(model="c", max_tokens=64, tools=tools, messages=[{"role": "user", "content": "Weather in SF?"}]) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use"] and final.content[0].text == "Let me check."  # type: ignore[union-attr]
    assert final.content[1].input == {"city": "SF"} and final.stop_reason == "tool_use"  # type: ignore[union-attr]

    upstream.queue(Reply.text("Sunny, 18°C."))
    client.messages.create(model="c", max_tokens=64, tools=tools, messages=[
        {"role": "user", "content": "Weather in SF?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": use.id, "name": use.name, "input": use.input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 18C"}]}])
    req = upstream.model_requests(protocol="messages")[-1]
    assert [(t.role, t.kind) for t in req.turns] == [("user", "message"), ("assistant", "tool_use"), ("tool", "tool_result")]
    assert req.last_user_text == "Weather in SF?" and req.turns[-1].text == "sunny, 18C"


def test_messages_errors_and_count_tokens(upstream: ScriptedUpstream) -> None:
    client = claude(upstream)
    ask: Any = {"model": "c", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    cases = [(Reply.error(429, "slow down", type="rate_limit_error", headers={"retry-after": "7"}), anthropic.RateLimitError, "rate_limit_error"),
             (Reply.error(529, "busy"), anthropic.OverloadedError, "overloaded_error"),
             (Reply.error(500), anthropic.InternalServerError, "api_error"),
             (Reply.error(401, "bad key", type="invalid_api_key"), anthropic.AuthenticationError, "authentication_error")]
    for reply, error, kind in cases:
        upstream.queue(reply)
        with pytest.raises(error) as info:
            client.messages.create(**ask)
        body = info.value.response.json()
        assert body["type"] == "error" and body["error"]["type"] == kind and body["request_id"].startswith("req_")
    assert info.value.response.headers["request-id"].startswith("req_")

    # malformed requests are refused as Anthropic refuses them, before any model call
    with pytest.raises(anthropic.BadRequestError, match='role "system"'):
        client.messages.create(model="c", max_tokens=16, messages=[{"role": "system", "content": "x"}, {"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.BadRequestError, match="max_tokens: Field required"):
        client.post("/v1/messages", body={"model": "c", "messages": []}, cast_to=object)
    with pytest.raises(anthropic.NotFoundError):  # a doubled /v1 is a 404, as upstream
        anthropic.Anthropic(base_url=upstream.url, api_key="k", max_retries=0).messages.create(**ask)
    assert [r.reply is None for r in upstream.model_requests()] == [False] * 4 + [True] * 2  # refused before the model

    counted = client.messages.count_tokens(model="c", system="Be brief.", messages=[{"role": "user", "content": "one two three"}])
    message = client.messages.create(model="c", max_tokens=16, system="Be brief.", messages=[{"role": "user", "content": "one two three"}])
    assert counted.input_tokens == message.usage.input_tokens == 5


def test_messages_stream_faults(upstream: ScriptedUpstream) -> None:
    client = claude(upstream)
    ask: Any = {"model": "c", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    upstream.queue(Reply.text("one two three four", error_after=2))
    got: list[str] = []
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
        with client.messages.stream(**ask) as stream:
            got.extend(stream.text_stream)
    assert got == ["one ", "two "]
    upstream.queue(Reply.text("late", delay=5))
    with pytest.raises(anthropic.APITimeoutError):
        client.with_options(timeout=0.3).messages.create(**ask)
    deadline = time.monotonic() + 3
    while not upstream.requests[-1].abandoned and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.requests[-1].abandoned  # the double saw the caller hang up


# -- one script, every protocol --------------------------------------------------------------------


def test_one_script_answers_in_each_protocol(upstream: ScriptedUpstream) -> None:
    """A test scripts an answer once; the double renders it in the protocol of the request, and
    memlane's memory stages are recognised whichever protocol carried them."""
    upstream.handler = lambda req: Reply.text(f"Noted, {req.protocol}.") if "cheese" in req.last_user_text else None
    said = "I am allergic to cheese."
    chat = openai.OpenAI(base_url=upstream.url, api_key="k").chat.completions.create(model="m", messages=[{"role": "user", "content": said}])
    resp = openai.OpenAI(base_url=upstream.url, api_key="k").responses.create(model="m", input=said)
    msg = claude(upstream).messages.create(model="c", max_tokens=16, messages=[{"role": "user", "content": said}])
    assert chat.choices[0].message.content == "Noted, chat." and resp.output_text == "Noted, responses."
    assert msg.content[0].text == "Noted, messages."  # type: ignore[union-attr]
    assert [r.protocol for r in upstream.model_requests()] == ["chat", "responses", "messages"]
    assert [r.turns for r in upstream.model_requests()] == [[Turn("user", said)]] * 3

    extract = "Extract the facts from this conversation.\n\nuser: I am allergic to cheese."
    upstream.handler = None
    out = claude(upstream).messages.create(model="c", max_tokens=64, system="You extract facts.", messages=[{"role": "user", "content": extract}])
    assert json.loads(out.content[0].text) == {"facts": []}  # type: ignore[union-attr]
    assert upstream.model_requests(stage="extract", protocol="messages") == [upstream.requests[-1]]


def test_openai_agents_runs_against_the_double(upstream: ScriptedUpstream) -> None:
    """The OpenAI Agents SDK (Responses by default) runs a tool-using agent on the double,
    streamed and not: what issue 21's agent tests will drive through memlane."""
    import asyncio

    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city now."""
        return f"sunny in {city}"

    async def run() -> list[str]:
        model = OpenAIResponsesModel(model="gpt-4.1-nano", openai_client=openai.AsyncOpenAI(base_url=upstream.url, api_key="k", max_retries=0))
        agent = Agent(name="weather", instructions="Be brief.", tools=[get_weather], model=model)
        answers = []
        for streamed in (False, True):
            upstream.queue(Reply.tools([{"name": "get_weather", "arguments": {"city": "SF"}}]), Reply.text("It is sunny in SF."))
            if streamed:
                result = Runner.run_streamed(agent, "Weather in SF?")
                async for _ in result.stream_events():
                    pass
            else:
                result = await Runner.run(agent, "Weather in SF?")
            answers.append(str(result.final_output))
        return answers

    assert asyncio.run(run()) == ["It is sunny in SF."] * 2
    calls = upstream.model_requests(protocol="responses")
    assert [bool(r.json.get("stream")) for r in calls] == [False, False, True, True]
    assert [(t.role, t.kind, t.text) for t in calls[-1].turns] == [
        ("system", "message", "Be brief."), ("user", "message", "Weather in SF?"),
        ("assistant", "function_call", '{"city": "SF"}'), ("tool", "function_call_output", "sunny in SF")]



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
