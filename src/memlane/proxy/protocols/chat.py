"""OpenAI Chat Completions (``POST /v1/chat/completions``, ``client.chat.completions.create``)."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from memlane.errors import UpstreamError
from memlane.openai_compat import CREATE_OPTIONS
from memlane.proxy.placement import PinnedBlocks, place
from memlane.proxy.protocols.base import ChatProtocol
from memlane.proxy.recall import as_mapping
from memlane.proxy.streams import chat_delta
from memlane.proxy.types import RecallMetadata, completion_with
from memlane.records import Scope, SearchHit


#: the request keys a call may have to go to the upstream without the SDK's parameter transform
_PLAIN_KEYS = frozenset({"model", "messages", "stream", "extra_body"})


def _json_native(value: Any) -> bool:
    """True for what ``json.loads`` makes (dicts with string keys, lists, strings, numbers,
    booleans, None) all the way down: what the SDK's parameter transform leaves as it is."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return True
    if kind is dict:
        return all(type(k) is str and _json_native(v) for k, v in value.items())
    if kind is list:
        return all(_json_native(v) for v in value)
    return False


def plain_call(request: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], Any] | None:
    """``(body, options, stream)`` for ``client.post`` when ``chat.completions.create(**request)``
    would send exactly that body: only model, messages, stream and extra_body given, all of it
    JSON as a server receives it. The SDK's transform of the parameters (walking every message
    against the SDK's TypedDicts to rename aliases, format dates and dump models) then changes
    nothing, and skipping it saves ~1 ms of CPU per chat (a third of the SDK's cost); retries,
    errors and the answer's parsing are the SDK's as before. None: use ``create``."""
    if not request.keys() <= _PLAIN_KEYS or "model" not in request or "messages" not in request:
        return None
    extra = request.get("extra_body")
    try:
        if not (_json_native(request["messages"]) and _json_native(request["model"]) and _json_native(request.get("stream"))
                and (extra is None or _json_native(extra))):
            return None
    except RecursionError:
        return None
    body = {"model": request["model"], **({"stream": request["stream"]} if "stream" in request else {}), "messages": request["messages"]}
    options = {**CREATE_OPTIONS, **({"extra_json": extra} if extra is not None else {})}
    return body, options, request.get("stream") or False


class ChatCompletions(ChatProtocol):
    name = "chat"

    def turns(self, request: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [dict(as_mapping(m)) for m in request.get("messages") or []]

    def with_memories(self, request: Mapping[str, Any], hits: Sequence[SearchHit], scope: Scope, placement: str,
                      pinned: PinnedBlocks | None) -> dict[str, Any]:
        return {**request, "messages": place(request["messages"], hits, scope, placement, pinned)}

    def send(self, client: Any, request: Mapping[str, Any]) -> Any:
        plain = plain_call(request)
        if plain is None:
            return client.chat.completions.create(**request)
        body, options, stream = plain
        return client.post("/chat/completions", body=body, options=options, cast_to=ChatCompletion, stream=stream,
                           stream_cls=openai.Stream[ChatCompletionChunk])

    async def asend(self, client: Any, request: Mapping[str, Any]) -> Any:
        plain = plain_call(request)
        if plain is None:
            return await client.chat.completions.create(**request)
        body, options, stream = plain
        return await client.post("/chat/completions", body=body, options=options, cast_to=ChatCompletion, stream=stream,
                                 stream_cls=openai.AsyncStream[ChatCompletionChunk])

    def checked(self, response: Any, stream: bool) -> Any:
        if stream or (isinstance(response, ChatCompletion) and isinstance(response.choices, list)):
            return response
        kind = "a JSON object without choices" if isinstance(response, ChatCompletion) else type(response).__name__
        raise UpstreamError(f"the upstream model server answered with something that is not a chat completion ({kind})")

    def reply_text(self, response: Any) -> str | None:
        """The first choice's text (None for tool calls or no choices)."""
        return response.choices[0].message.content if response.choices else None

    def delta_text(self, event: Any) -> str | None:
        return chat_delta(event)

    def answer(self, response: Any, metadata: RecallMetadata | None) -> Any:
        return completion_with(response, metadata)

    def with_stream_metadata(self, event: dict[str, Any], metadata: Mapping[str, Any]) -> dict[str, Any]:
        return {**event, "metadata": dict(metadata)}

    def sse(self, event: Mapping[str, Any]) -> bytes:
        return f"data: {json.dumps(event, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()

    done = b"data: [DONE]\n\n"
