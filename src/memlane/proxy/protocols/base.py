"""What one chat protocol is to memlane's pipeline, and nothing more.

The pipeline (``memlane.proxy.embedded``) is written once: memlane's fields checked into a
``ChatCall``, recall, memories placed, the upstream called, the answer returned in the
protocol's own shape, the exchange learnt. A protocol adapter says only what differs:

- ``turns(request)``: the request's conversation as chat-shaped turns (``role``, text
  ``content``): what recall reads (the latest user turn) and learning keeps (the new user
  turns). Media and tool traffic reach the model, never these turns.
- ``with_memories(request, hits, call, placement, pinned)``: the request to send, the caller's
  own left untouched, with the memory blocks where the prefix stays cacheable.
- ``send`` / ``asend``: the upstream call (the protocol's SDK, sync or async).
- ``reply_text(response)`` / ``delta_text(event)``: the answer's text, whole or as it streams.
- ``answer(response, metadata)``: the response as the caller gets it, with memlane's
  ``metadata`` (the exchange id; the recalled memories when asked for).
- ``relay(stream, on_complete, metadata, asynchronous=)``: the stream the caller iterates (the
  upstream's events as they come; ``on_complete(text)`` at its end); the openai SDK's stream
  classes by default, the anthropic SDK's for Messages.
- ``sse(event, metadata)``: one stream event as the server writes it (the first carries the
  metadata).

Adding a protocol is one adapter here and one route in ``memlane.server.routes_openai`` (or its
own routes module).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Sequence

from memlane.proxy.placement import PinnedBlocks
from memlane.proxy.streams import MemlaneAsyncStream, MemlaneStream
from memlane.proxy.types import RecallMetadata
from memlane.records import Scope, SearchHit


class ChatProtocol:
    """One chat protocol (see the module docstring). Stateless: one instance serves every call."""

    #: the name in logs, metrics and errors ("chat", "responses", "messages")
    name: str = ""
    #: which upstream client ``send`` uses: "openai" or "anthropic"
    upstream: str = "openai"
    #: the request field holding the conversation, what it must be, and whether a bare string is one
    turns_field: str = "messages"
    turns_shape: str = "list of messages"
    text_turns: bool = False

    def turns(self, request: Mapping[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def model(self, request: Mapping[str, Any]) -> Any:
        return request.get("model")

    def streams(self, request: Mapping[str, Any]) -> bool:
        return bool(request.get("stream"))

    def with_memories(self, request: Mapping[str, Any], hits: Sequence[SearchHit], scope: Scope, placement: str,
                      pinned: PinnedBlocks | None) -> dict[str, Any]:
        raise NotImplementedError

    def send(self, client: Any, request: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    async def asend(self, client: Any, request: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def checked(self, response: Any, stream: bool) -> Any:
        """The upstream's answer if it is this protocol's; ``UpstreamError`` (502) otherwise."""
        return response

    def reply_text(self, response: Any) -> str | None:
        raise NotImplementedError

    def delta_text(self, event: Any) -> str | None:
        raise NotImplementedError

    def answer(self, response: Any, metadata: RecallMetadata | None) -> Any:
        raise NotImplementedError

    def relay(self, stream: Any, on_complete: Callable[[str], Any], metadata: RecallMetadata | None, *,
              asynchronous: bool) -> Any:
        """The stream the caller iterates: the upstream's events, unchanged, then ``on_complete``
        with the answer's text (``delta_text`` of each event); not called for a stream closed early."""
        relay = MemlaneAsyncStream if asynchronous else MemlaneStream
        return relay(stream, on_complete, metadata, self.delta_text)

    def sse(self, event: Mapping[str, Any]) -> bytes:
        """One stream event on the wire: OpenAI's Responses and Anthropic name each event."""
        data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
        kind = event.get("type")
        return (f"event: {kind}\n" if isinstance(kind, str) else "").encode() + f"data: {data}\n\n".encode()

    def with_stream_metadata(self, event: dict[str, Any], metadata: Mapping[str, Any]) -> dict[str, Any]:
        """The first stream event, carrying memlane's metadata."""
        return {**event, "metadata": dict(metadata)}

    #: what ends the stream on the wire after the last event (chat completions: ``[DONE]``)
    done: bytes = b""
    #: the request fields the SDK call takes as keywords (the server passes the rest as extra_body)
    sdk_fields: tuple[str, ...] = ("model", "messages", "stream")

    def stream_error(self, error: dict[str, Any]) -> dict[str, Any]:
        """The in-band event for a stream that broke after it began, from OpenAI's error object."""
        return error
