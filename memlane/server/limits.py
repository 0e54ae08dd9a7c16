"""Request-size and field limits: a clear 413 or 400 instead of a slow death."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from memlane.server.errors import APIError

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 8 * 1024 * 1024
    max_messages: int = 2_000
    max_limit: int = 1_000
    max_metadata_bytes: int = 16 * 1024
    max_memory_chars: int = 20_000
    max_page_size: int = 1_000

    def check_metadata(self, metadata: Any) -> None:
        if metadata is not None and len(json.dumps(metadata, default=str)) > self.max_metadata_bytes:
            raise APIError(400, f"metadata is larger than {self.max_metadata_bytes} bytes", param="metadata", code="metadata_too_large")

    def check_limit(self, value: Any, name: str = "limit") -> None:
        if isinstance(value, int) and not isinstance(value, bool) and value > self.max_limit:
            raise APIError(400, f"{name} must be at most {self.max_limit}", param=name, code="limit_too_large")

    def check_chat(self, messages: list[Any], ours: dict[str, Any]) -> None:
        if len(messages) > self.max_messages:
            raise APIError(400, f"at most {self.max_messages} messages per request", param="messages", code="too_many_messages")
        self.check_metadata(ours.get("metadata"))
        self.check_limit(ours.get("limit"))
        self.check_limit(ours.get("top_k"), "top_k")

    def check_text(self, text: Any, name: str) -> None:
        if isinstance(text, str) and len(text) > self.max_memory_chars:
            raise APIError(400, f"{name} is longer than {self.max_memory_chars} characters", param=name, code="text_too_long")


class BodyLimit:
    """ASGI middleware: refuse bodies over the limit, by Content-Length or while streaming in."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _too_large(self, send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        body = json.dumps({"error": {"message": f"request body larger than {self.max_bytes} bytes", "type": "invalid_request_error",
                                     "param": None, "code": "request_too_large"}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._too_large(send)
                return
        # Read the body first (bounded), so an oversized chunked body is refused before any
        # handler sees it; then replay it to the app.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > self.max_bytes:
                await self._too_large(send)
                return
            if not message.get("more_body"):
                break
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
