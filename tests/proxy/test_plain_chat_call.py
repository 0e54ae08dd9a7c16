"""A chat the server received as JSON goes upstream without the openai SDK's parameter transform
(``protocols/chat.py``, ``plain_call``): the model server must receive exactly what
``chat.completions.create`` sends, headers and body, answers and streams included; anything
that is not plain JSON (an SDK message object, an unknown keyword) still goes through ``create``."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from memlane.proxy.protocols import CHAT
from memlane.proxy.protocols.chat import plain_call
from memlane.testing import Reply, ScriptedUpstream

#: headers that differ between any two calls
VARYING = {"x-stainless-retry-count", "x-stainless-read-timeout", "content-length"}


def answer(completion: Any) -> dict[str, Any]:
    """A completion without what each answer draws anew (its id, its time)."""
    return {k: v for k, v in completion.model_dump().items() if k not in ("id", "created")}


def received(upstream: ScriptedUpstream) -> tuple[dict[str, str], Any]:
    request = upstream.chat_requests()[-1]
    return {k: v for k, v in request.headers.items() if k.lower() not in VARYING}, request.json


REQUESTS = [
    {"model": "m", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi ✓"}]},
    {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "stream": False,
     "extra_body": {"temperature": 0.2, "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
                    "metadata": {"a": "b"}}},
]


@pytest.mark.parametrize("request_", REQUESTS)
def test_a_plain_request_reaches_the_upstream_as_create_sends_it(upstream: ScriptedUpstream, request_: dict[str, Any]) -> None:
    assert plain_call(request_) is not None
    sync = openai.OpenAI(base_url=upstream.url, api_key="sk-test", max_retries=0)
    upstream.queue(Reply.text("hello"), Reply.text("hello"))
    by_sdk = sync.chat.completions.create(**request_)
    sent_by_sdk = received(upstream)
    ours = CHAT.send(sync, request_)
    assert received(upstream) == sent_by_sdk
    assert answer(ours) == answer(by_sdk) and isinstance(ours, type(by_sdk))

    async def both() -> tuple[Any, Any]:
        client = openai.AsyncOpenAI(base_url=upstream.url, api_key="sk-test", max_retries=0)
        upstream.queue(Reply.text("hello"), Reply.text("hello"))
        a = await client.chat.completions.create(**request_)
        sent_a = received(upstream)
        b = await CHAT.asend(client, request_)
        assert received(upstream) == sent_a
        await client.close()
        return a, b

    a, b = asyncio.run(both())
    assert answer(a) == answer(b)


def test_a_plain_stream_and_an_upstream_error_are_the_sdks(upstream: ScriptedUpstream) -> None:
    client = openai.OpenAI(base_url=upstream.url, api_key="sk-test", max_retries=0)
    upstream.queue(Reply.text("streamed answer"))
    stream = CHAT.send(client, {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    assert isinstance(stream, openai.Stream)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "streamed answer"
    upstream.queue(Reply.error(404, "no such model"))
    with pytest.raises(openai.NotFoundError):
        CHAT.send(client, {"model": "m", "messages": [{"role": "user", "content": "hi"}]})


def test_what_is_not_plain_json_goes_through_create() -> None:
    message = openai.types.chat.ChatCompletionMessage(role="assistant", content="earlier answer")
    assert plain_call({"model": "m", "messages": [{"role": "user", "content": "hi"}, message]}) is None
    assert plain_call({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.1}) is None
    assert plain_call({"model": "m", "messages": ({"role": "user", "content": "hi"},)}) is None
    assert plain_call({"messages": [{"role": "user", "content": "hi"}]}) is None
