"""The relay of ``memlane.proxy.streams`` for the anthropic SDK's streams: ``anthropic.Stream`` /
``anthropic.AsyncStream`` subclasses whose events are the SDK's own ``RawMessageStreamEvent``
objects, unchanged; learning starts when the stream ends. Its own module, so that only a
process that streams Anthropic messages imports the anthropic SDK (about a second)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, AsyncIterator, Callable, Iterator

import anthropic
import httpx2

from memlane.proxy.streams import _Relay, _Reply
from memlane.proxy.types import RecallMetadata


@contextmanager
def _sdk_errors(response: Any) -> Iterator[None]:
    """A read that fails mid-stream as the anthropic SDK's own error (its stream raises the
    HTTP client's, where openai's raises ``APIConnectionError`` / ``APITimeoutError``)."""
    try:
        yield
    except httpx2.TimeoutException as exc:
        raise anthropic.APITimeoutError(request=response.request) from exc
    except httpx2.TransportError as exc:
        raise anthropic.APIConnectionError(request=response.request) from exc


class MessagesStream(_Relay, anthropic.Stream[Any]):
    """``MemlaneStream`` for an anthropic SDK stream: its events pass through, learning starts at its end."""

    #: the SDK's tracing reads the inner stream's own reads; this one is not read twice
    _observer = None

    def __init__(self, inner: anthropic.Stream[Any], on_complete: Callable[[str], None], metadata: RecallMetadata | None,
                 text_of: Callable[[Any], str | None]) -> None:
        self._setup(inner, on_complete, metadata, text_of)

    def _relay(self) -> Iterator[Any]:
        reply = _Reply(self._text_of)
        with _sdk_errors(self.response):
            for event in self._inner:
                reply.add(event)
                yield event
        self._on_complete(reply.text)

    def close(self) -> None:
        self._inner.close()


class AsyncMessagesStream(_Relay, anthropic.AsyncStream[Any]):
    """The ``async for`` twin of ``MessagesStream``."""

    _observer = None

    def __init__(self, inner: anthropic.AsyncStream[Any], on_complete: Callable[[str], Any], metadata: RecallMetadata | None,
                 text_of: Callable[[Any], str | None]) -> None:
        self._setup(inner, on_complete, metadata, text_of)

    async def _relay(self) -> AsyncIterator[Any]:
        reply = _Reply(self._text_of)
        with _sdk_errors(self.response):
            async for event in self._inner:
                reply.add(event)
                yield event
        await self._on_complete(reply.text)

    async def close(self) -> None:
        await self._inner.close()
