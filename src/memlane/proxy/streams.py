"""Streams that pass the upstream's chunks through as they arrive and learn once complete.

They are ``openai.Stream`` / ``openai.AsyncStream`` subclasses, so code that type-checks or
``isinstance``-checks the SDK's stream keeps working; the chunks are the SDK's own
``ChatCompletionChunk`` objects, unchanged. Anthropic's streams get the same relay in
``memlane.proxy.anthropic_streams`` (imported only when a Messages call streams).
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable, Iterator

import openai
from openai.types.chat import ChatCompletionChunk

from memlane.proxy.types import RecallMetadata


def chat_delta(chunk: Any) -> str | None:
    """The text a chat completion chunk adds to the first choice."""
    parts = [c.delta.content for c in chunk.choices or [] if c.index == 0 and c.delta is not None and c.delta.content]
    return "".join(parts) or None


class _Reply:
    """Collects the answer's text as it streams by (``text_of``: the text one event adds)."""

    def __init__(self, text_of: Callable[[Any], str | None]) -> None:
        self.parts: list[str] = []
        self._text_of = text_of

    def add(self, event: Any) -> None:
        text = self._text_of(event)
        if text:
            self.parts.append(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)


class _Relay:
    """What both stream classes hold: the SDK's stream, what to do at its end, what was recalled."""

    def _setup(self, inner: Any, on_complete: Callable[[str], Any], metadata: RecallMetadata | None,
               text_of: Callable[[Any], str | None] = chat_delta) -> None:
        self._inner = inner
        self._text_of = text_of
        self.response = inner.response
        self._on_complete = on_complete
        #: What was recalled (when ``include_memories`` was asked for).
        self.metadata = metadata
        self._iterator = self._relay()  # type: ignore[attr-defined]


class MemlaneStream(_Relay, openai.Stream[ChatCompletionChunk]):
    """``for chunk in stream``: the upstream's chunks; learning starts when the stream ends.

    A stream closed before its end is not learnt from: the answer was never complete.
    """

    def __init__(self, inner: openai.Stream[ChatCompletionChunk], on_complete: Callable[[str], None],
                 metadata: RecallMetadata | None, text_of: Callable[[Any], str | None] = chat_delta) -> None:
        self._setup(inner, on_complete, metadata, text_of)

    def _relay(self) -> Iterator[ChatCompletionChunk]:
        reply = _Reply(self._text_of)
        for chunk in self._inner:
            reply.add(chunk)
            yield chunk
        self._on_complete(reply.text)

    def close(self) -> None:
        self._inner.close()


class MemlaneAsyncStream(_Relay, openai.AsyncStream[ChatCompletionChunk]):
    """The ``async for`` twin of ``MemlaneStream``."""

    def __init__(self, inner: openai.AsyncStream[ChatCompletionChunk], on_complete: Callable[[str], Any],
                 metadata: RecallMetadata | None, text_of: Callable[[Any], str | None] = chat_delta) -> None:
        self._setup(inner, on_complete, metadata, text_of)

    async def _relay(self) -> AsyncIterator[ChatCompletionChunk]:
        reply = _Reply(self._text_of)
        async for chunk in self._inner:
            reply.add(chunk)
            yield chunk
        await self._on_complete(reply.text)

    async def close(self) -> None:
        await self._inner.close()


def _metadata_of(chunk: ChatCompletionChunk) -> RecallMetadata | None:
    """The ``metadata`` a memlane server puts on a stream's first chunk (memories, exchange id)."""
    extra = getattr(chunk, "model_extra", None) or {}
    found = extra.get("metadata")
    return RecallMetadata.model_validate(found) if isinstance(found, dict) else None


class ServerStream(MemlaneStream):
    """A memlane server's stream, chunks unchanged; the ``metadata`` of its first chunk becomes
    ``stream.metadata`` (as an embedded client's stream has it), and is told to ``on_complete``
    when the stream has ended (a stream closed early is not learnt from, as in embedded mode)."""

    def __init__(self, inner: openai.Stream[ChatCompletionChunk], on_complete: Callable[[RecallMetadata], None]) -> None:
        self._told = on_complete
        super().__init__(inner, lambda text: None, None)

    def _relay(self) -> Iterator[ChatCompletionChunk]:
        first = True
        for chunk in self._inner:
            if first:
                first = False
                self.metadata = _metadata_of(chunk)
            yield chunk
        if self.metadata is not None:
            self._told(self.metadata)


class AsyncServerStream(MemlaneAsyncStream):
    """The ``async for`` twin of ``ServerStream``."""

    def __init__(self, inner: openai.AsyncStream[ChatCompletionChunk], on_complete: Callable[[RecallMetadata], None]) -> None:
        self._told = on_complete

        async def nothing(text: str) -> None:
            return None

        super().__init__(inner, nothing, None)

    async def _relay(self) -> AsyncIterator[ChatCompletionChunk]:
        first = True
        async for chunk in self._inner:
            if first:
                first = False
                self.metadata = _metadata_of(chunk)
            yield chunk
        if self.metadata is not None:
            self._told(self.metadata)
