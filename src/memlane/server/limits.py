"""Request-size and field limits: a clear 413 or 400 instead of a slow death."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, fields
from typing import Any, Awaitable, Callable

import numpy as np

from memlane.config import ServerConfig
from memlane.engine.validation import check_metadata
from memlane.errors import ValidationError
from memlane.server.errors import APIError

log = logging.getLogger("memlane.server")

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]


@dataclass(frozen=True)
class Limits:
    """The request limits of ``ServerConfig`` (the ``server`` config section), checked per field."""

    max_body_bytes: int = 8 * 1024 * 1024
    max_messages: int = 2_000
    max_limit: int = 1_000
    max_metadata_bytes: int = 16 * 1024
    max_memory_chars: int = 20_000
    #: Nesting of arrays/objects a JSON body may have: deeper ones are refused before parsing
    #: (Python's JSON parser recurses; ~1,000 levels crash it).
    max_json_depth: int = 64

    @classmethod
    def from_config(cls, server: ServerConfig) -> Limits:
        return cls(**{f.name: getattr(server, f.name) for f in fields(cls)})

    def check_metadata(self, metadata: Any) -> None:
        """The engine's own check (``engine.validation``), made before a chat goes upstream."""
        try:
            check_metadata(metadata, self.max_metadata_bytes)
        except ValidationError as exc:
            raise APIError(400, exc.message, param="metadata", code=exc.code or "invalid_metadata") from None

    def check_limit(self, value: Any, name: str = "limit") -> None:
        if isinstance(value, int) and not isinstance(value, bool) and value > self.max_limit:
            raise APIError(400, f"{name} must be at most {self.max_limit}", param=name, code="limit_too_large")

    def check_fields(self, ours: Any) -> None:
        """A chat call's memlane fields (``MemlaneFields``), before it goes upstream."""
        self.check_metadata(ours.metadata)
        self.check_limit(ours.limit)
        self.check_limit(ours.top_k, "top_k")

    def check_messages(self, messages: list[Any]) -> None:
        if len(messages) > self.max_messages:
            raise APIError(400, f"at most {self.max_messages} messages per request", param="messages", code="too_many_messages")


#: how long a refused oversized upload is read on before the 413 is sent anyway
DRAIN_SECONDS = 10.0

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKET_STEP = np.zeros(256, dtype=np.int8)
_BRACKET_STEP[[ord("["), ord("{")]] = 1
_BRACKET_STEP[[ord("]"), ord("}")]] = -1


def json_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in a JSON (or JSON Lines) text, without parsing it:
    strings are cut out, brackets counted (numpy; an 8 MiB body takes milliseconds)."""
    if b"[" not in body and b"{" not in body:
        return 0
    steps = _BRACKET_STEP[np.frombuffer(_STRINGS.sub(b"", body), dtype=np.uint8)]
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0))


#: JSON escapes: a surrogate pair, a lone high or low surrogate, or any other escape (consumed,
#: so an escaped backslash followed by "ud800" is not read as an escape)
_ESCAPES = re.compile(rb"\\(?:(?P<high>u[dD][89abAB][0-9a-fA-F]{2})(?P<low>\\u[dD][c-fC-F][0-9a-fA-F]{2})?"
                      rb"|(?P<lone_low>u[dD][c-fC-F][0-9a-fA-F]{2})|.)", re.S)
_ANY_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def body_text_problem(body: bytes) -> str | None:
    """Why a body is not text every part of memlane can encode again, or None: bytes that are
    not UTF-8, or a JSON escape of a lone surrogate (``"\\ud800"``), which JSON parsers accept
    but no UTF-8 encoder (store, embedder, upstream, log) does."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"the request body is not valid UTF-8 (byte {exc.start}: {body[exc.start:exc.start + 1]!r})"
    if not _ANY_SURROGATE.search(body):
        return None  # the usual case: one scan in C
    for escape in _ESCAPES.finditer(body):
        if (escape["high"] and not escape["low"]) or escape["lone_low"]:
            return (f"the request body holds a lone surrogate escape \\{(escape['high'] or escape['lone_low']).decode()} at byte "
                    f"{escape.start()}: JSON text must be valid Unicode (pair it or drop it)")
    return None


class RequestGuard:
    """ASGI middleware in front of every route: the body is read first, bounded in size and in
    JSON nesting, so no handler sees an oversized or pathological body; then the handler runs
    while the connection is watched, and a caller who disconnects cancels it, so the upstream
    request it was waiting on is closed instead of held until it times out."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_depth: int = 64) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    @staticmethod
    async def _refuse(send: Callable[[dict[str, Any]], Awaitable[None]], status: int, message: str, code: str) -> None:
        body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _too_large(self, receive: Any, send: Callable[[dict[str, Any]], Awaitable[None]], more: bool) -> None:
        """413, after reading (and dropping) what the caller is still sending, up to a bound:
        answering mid-upload and closing would reset the connection, and the caller would see
        a reset instead of the error."""
        if more:
            await self._drain(receive)
        await self._refuse(send, 413, f"request body larger than {self.max_bytes} bytes (server.max_body_bytes)", "request_too_large")

    async def _drain(self, receive: Any) -> None:
        budget = max(4 * self.max_bytes, 64 * 1024 * 1024)

        async def read() -> None:
            nonlocal budget
            while budget > 0:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body"):
                    return
                budget -= len(message.get("body", b""))

        try:
            await asyncio.wait_for(read(), DRAIN_SECONDS)
        except asyncio.TimeoutError:
            pass

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            # a caller waiting for "100 Continue" has sent nothing yet: answer without inviting the upload
            await self._too_large(receive, send, more=b"100-continue" not in headers.get(b"expect", b"").lower())
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the caller left before sending its body
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.max_bytes:
                await self._too_large(receive, send, more=bool(message.get("more_body")))
                return
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        # (nothing nests deeper than it opens brackets: two counts in C spare a chat's body the ~30 us scan)
        if body.count(b"[") + body.count(b"{") > self.max_depth and json_depth(body) > self.max_depth:
            await self._refuse(send, 400, f"request body nests arrays/objects more than {self.max_depth} levels deep", "json_too_deep")
            return
        problem = body_text_problem(body) if body else None
        if problem:
            await self._refuse(send, 400, problem, "invalid_encoding")
            return
        await self._run_watched(scope, body, receive, send)

    async def _run_watched(self, scope: dict[str, Any], body: bytes, receive: Any, send: Any) -> None:
        gone = asyncio.Event()
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        handler = asyncio.ensure_future(self.app(scope, replay, send))

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()
            if not handler.done():
                log.info("caller disconnected from %s %s; cancelling its request", scope.get("method"), scope.get("path"))
                handler.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            await handler
        except asyncio.CancelledError:
            if not gone.is_set():
                raise  # the server itself is cancelling us
        finally:
            watcher.cancel()
