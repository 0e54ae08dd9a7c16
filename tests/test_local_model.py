"""The local model server is a real OpenAI-compatible server for a GGUF model: the openai SDK
talks to it as to any, constrained output (JSON schema, JSON mode) is honoured, what llama.cpp
refuses comes back as OpenAI's 400 envelope, two kept-alive clients are both answered, and it
records every request (how a bench counts LLM calls)."""

from __future__ import annotations

import json
import threading
from typing import Iterator

import openai
import pytest

from memlane.testing.local_model import LocalModelServer, find_smollm2, unavailable_reason

REASON = unavailable_reason()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(REASON is not None, reason=REASON or "")]

FACTS_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["facts"],
                "properties": {"facts": {"type": "array", "maxItems": 2, "items": {"type": "string", "maxLength": 40}}}}


@pytest.fixture(scope="module")
def server() -> Iterator[LocalModelServer]:
    path = find_smollm2()
    assert path is not None
    with LocalModelServer(path, model_name="smollm2") as local:
        yield local


@pytest.fixture
def client(server: LocalModelServer) -> openai.OpenAI:
    server.clear()
    return openai.OpenAI(base_url=server.url, api_key="x", max_retries=0)


def test_it_lists_its_model_and_answers_a_json_schema_with_a_valid_object(client: openai.OpenAI, server: LocalModelServer) -> None:
    assert [m.id for m in client.models.list()] == ["smollm2"]
    answer = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Name two fruits."}], temperature=0, max_tokens=48,
        response_format={"type": "json_schema", "json_schema": {"name": "facts", "strict": True, "schema": FACTS_SCHEMA}})
    assert answer.model == "smollm2"
    if answer.choices[0].finish_reason == "stop":  # decoding was constrained: whatever it says fits the schema
        facts = json.loads(answer.choices[0].message.content or "")["facts"]
        assert isinstance(facts, list) and len(facts) <= 2 and all(isinstance(f, str) and len(f) <= 40 for f in facts)
    (call,) = server.model_calls()
    assert call.status == 200 and call.body["max_tokens"] == 48 and call.body["response_format"]["type"] == "json_schema"
    assert call.text == answer.choices[0].message.content


def test_what_llama_cpp_refuses_is_openais_400_envelope(client: openai.OpenAI, server: LocalModelServer) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "hi"}],
                                       response_format={"type": "xml"})  # type: ignore[arg-type,typeddict-item]
    assert refused.value.status_code == 400
    assert isinstance(refused.value.body, dict) and "response_format" in refused.value.body["message"]
    assert refused.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="smollm2", messages="hi")  # type: ignore[arg-type]
    assert [c.status for c in server.model_calls()] == [400, 400]


def test_two_clients_that_keep_their_connections_alive_are_both_answered(client: openai.OpenAI, server: LocalModelServer) -> None:
    other = openai.OpenAI(base_url=server.url, api_key="x", max_retries=0, timeout=60)
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=2)  # its connection stays open
    answers: list[str] = []

    def ask(sdk: openai.OpenAI) -> None:
        answers.append(sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], max_tokens=4).choices[0].message.content or "")

    threads = [threading.Thread(target=ask, args=(sdk,)) for sdk in (other, client)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 2
    assert len(server.model_calls()) == 3


def test_a_stream_comes_as_chat_completion_chunks(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "hi"}], max_tokens=6,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 6
