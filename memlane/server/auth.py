"""Who is calling: ``Authorization: Bearer <key>`` or ``Token <key>`` (mem0 style) → a project."""

from __future__ import annotations

import time

from fastapi import Request

from memlane.server.errors import APIError
from memlane.server.keys import DEFAULT_PROJECT, KeyStore

_HINT = "send 'Authorization: Bearer <key>'; create a key with: memlane keys create --project NAME"


class Auth:
    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys
        self._active: tuple[float, bool] = (0.0, False)

    def enabled(self) -> bool:
        """Keys exist → every request needs one. Checked at most once a second."""
        checked_at, active = self._active
        if time.monotonic() - checked_at > 1.0:
            active = self.keys.any_active()
            self._active = (time.monotonic(), active)
        return active

    async def __call__(self, request: Request) -> str:
        if not self.enabled():
            return DEFAULT_PROJECT
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise APIError(401, f"missing API key: {_HINT}", code="invalid_api_key")
        if scheme.lower() not in ("bearer", "token") or not token.strip():
            raise APIError(401, f"malformed Authorization header: {_HINT}", code="invalid_api_key")
        info = self.keys.lookup(token.strip())
        if info is None:
            raise APIError(401, "invalid or revoked API key", code="invalid_api_key")
        request.state.project = info.project
        return info.project
