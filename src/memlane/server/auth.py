"""Who is calling: ``Authorization: Bearer <key>`` or ``Token <key>`` (mem0 style) → a project.
Anthropic's routes also take ``x-api-key: <key>``, Anthropic's own header (``Auth.anthropic``).

Whether keys are required is one decision made on every request, and it only ever closes:
keys are required when the server listens beyond loopback, or once any key was ever created
here (revoked or not). Once required, a request needs an active key; an empty key set means no
access at all. Revoking the last key therefore closes the server, never opens it.
"""

from __future__ import annotations

import threading
from typing import Callable

from fastapi import Request

from memlane.server.errors import APIError
from memlane.server.keys import DEFAULT_PROJECT, KeyStore

_HINT = "send 'Authorization: Bearer <key>'; create a key with: memlane keys create --project NAME"


class Auth:
    def __init__(self, keys: KeyStore, *, require_keys: bool = False, on_request: Callable[[str], None] | None = None) -> None:
        """``on_request(project)``: told of each request let in (the metrics count them per project)."""
        self.keys = keys
        self._on_request = on_request
        self._required = require_keys
        self._lock = threading.Lock()

    def required(self) -> bool:
        """True for good once keys are required; until then, asks the key store each request
        (one indexed read), so the first ``memlane keys create`` takes effect at once."""
        if not self._required:
            created = self.keys.any_created()
            with self._lock:
                self._required = self._required or created
        return self._required

    def project_of(self, authorization: str) -> str:
        """The project the ``Authorization`` header's key belongs to; ``APIError(401)`` otherwise."""
        if not self.required():
            return DEFAULT_PROJECT
        scheme, _, token = authorization.partition(" ")
        if not authorization:
            raise APIError(401, f"missing API key: {_HINT}", code="invalid_api_key")
        if scheme.lower() not in ("bearer", "token") or not token.strip():
            raise APIError(401, f"malformed Authorization header: {_HINT}", code="invalid_api_key")
        info = self.keys.lookup(token.strip())
        if info is None:
            if not self.keys.any_active():
                raise APIError(401, "this server requires API keys and none is active (every key was revoked); "
                               "create one with: memlane keys create --project NAME", code="invalid_api_key")
            raise APIError(401, "invalid or revoked API key", code="invalid_api_key")
        return info.project

    async def __call__(self, request: Request) -> str:
        return self._let_in(request, request.headers.get("authorization", ""))

    async def anthropic(self, request: Request) -> str:
        """The dependency of Anthropic's routes: the key as ``Authorization: Bearer`` (the
        anthropic SDK's ``auth_token``, and ``api_key`` in some versions) or ``x-api-key``."""
        key = request.headers.get("x-api-key", "").strip()
        return self._let_in(request, request.headers.get("authorization") or (f"Bearer {key}" if key else ""))

    def _let_in(self, request: Request, authorization: str) -> str:
        project = self.project_of(authorization)
        request.state.project = project
        if self._on_request is not None:
            self._on_request(project)
        return project
