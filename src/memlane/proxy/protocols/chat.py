"""OpenAI Chat Completions (``POST /v1/chat/completions``, ``client.chat.completions.create``)."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from openai.types.chat import ChatCompletion

from memlane.errors import UpstreamError
from memlane.proxy.placement import PinnedBlocks, place
from memlane.proxy.protocols.base import ChatProtocol
from memlane.proxy.recall import as_mapping
from memlane.proxy.streams import chat_delta
from memlane.proxy.types import RecallMetadata, completion_with
from memlane.records import Scope, SearchHit


class ChatCompletions(ChatProtocol):
    name = "chat"

    def turns(self, request: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [dict(as_mapping(m)) for m in request.get("messages") or []]

    def with_memories(self, request: Mapping[str, Any], hits: Sequence[SearchHit], scope: Scope, placement: str,
                      pinned: PinnedBlocks | None) -> dict[str, Any]:
        return {**request, "messages": place(request["messages"], hits, scope, placement, pinned)}

    def send(self, client: Any, request: Mapping[str, Any]) -> Any:
        return client.chat.completions.create(**request)

    async def asend(self, client: Any, request: Mapping[str, Any]) -> Any:
        return await client.chat.completions.create(**request)

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
