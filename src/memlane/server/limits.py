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
        if metadata is not None and len(json.dumps(metadata, default=str)) > self.max_metadata_bytes:
            raise APIError(400, f"metadata is larger than {self.max_metadata_bytes} bytes", param="metadata", code="metadata_too_large")

    def check_limit(self, value: Any, name: str = "limit") -> None:
        if isinstance(value, int) and not isinstance(value, bool) and value > self.max_limit:
            raise APIError(400, f"{name} must be at most {self.max_limit}", param=name, code="limit_too_large")

    def check_chat(self, messages: list[Any], ours: Any) -> None:
        """``ours``: the request's ``MemlaneFields``."""
        self.check_messages(messages)
        self.check_metadata(ours.metadata)
        self.check_limit(ours.limit)
        self.check_limit(ours.top_k, "top_k")

    def check_messages(self, messages: list[Any]) -> None:
        if len(messages) > self.max_messages:
            raise APIError(400, f"at most {self.max_messages} messages per request", param="messages", code="too_many_messages")

    def check_text(self, text: Any, name: str) -> None:
        if isinstance(text, str) and len(text) > self.max_memory_chars:
            raise APIError(400, f"{name} is longer than {self.max_memory_chars} characters", param=name, code="text_too_long")


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

    async def _too_large(self, send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        await self._refuse(send, 413, f"request body larger than {self.max_bytes} bytes", "request_too_large")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._too_large(send)
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
                await self._too_large(send)
                return
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if json_depth(body) > self.max_depth:
            await self._refuse(send, 400, f"request body nests arrays/objects more than {self.max_depth} levels deep", "json_too_deep")
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
