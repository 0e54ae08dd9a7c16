"""A webhook receiver on a loopback port, for tests of webhook delivery (memlane's and users').

Real HTTP (a threaded stdlib server): it records every request (headers and the raw body, as
the signature covers it), answers ``fail_first`` requests with ``fail_status`` (a receiver
that is down, then recovers), then 200, and keeps each accepted event by its idempotency key,
as a receiver should, so a test can check "each event exactly once".
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One request as it arrived, and what it was answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def payload(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """``with WebhookReceiver(fail_first=3) as hook: ... hook.url ...``"""

    fail_first: int = 0
    fail_status: int = 500
    requests: list[Received] = field(default_factory=list)
    #: the accepted events, by idempotency key, in the order first accepted
    accepted: dict[str, Any] = field(default_factory=dict)
    #: how many times an already accepted key was sent again with success
    duplicates: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the receiver first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        with self._lock:
            status = self.fail_status if len(self.requests) < self.fail_first else 200
            self.requests.append(Received(handler.path, dict(handler.headers.items()), body, status))
            if status == 200:
                key = handler.headers.get("Idempotency-Key") or ""
                if key in self.accepted:
                    self.duplicates += 1
                else:
                    self.accepted[key] = json.loads(body)
        handler.send_response(status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                receiver._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["Received", "WebhookReceiver"]
