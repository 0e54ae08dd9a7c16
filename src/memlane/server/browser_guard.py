"""Keeps web pages from driving the server through the user's browser.

A server on loopback with no keys trusts whoever can reach it; a browser visiting any site can
reach it too. Three ways in are closed here, on every route (``/ui`` included), before a body
is read:

- **DNS rebinding**: a page whose own name was re-pointed at 127.0.0.1 sends its own name as
  ``Host``. Only loopback names, IP addresses (a page can't rebind an address) and the names in
  ``server.allowed_hosts`` are answered; any other ``Host`` gets 421.
- **Cross-site writes**: a browser names the page's origin in ``Origin`` on every cross-origin
  write. A state-changing request (anything but GET/HEAD/OPTIONS) from an origin that is not
  loopback, not this server's own and not in ``server.cors_origins`` gets 403.
- **Simple requests**: ``text/plain``, form and multipart bodies need no CORS preflight, so a
  page can send them blind. The API's writes take JSON only (415 otherwise); the inspector's
  forms (``/ui``) carry a CSRF token instead.

Allowed origins also get CORS headers (preflights answered), so a web app listed in
``server.cors_origins`` can call the API and read its answers.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from memlane.server.errors import envelope

log = logging.getLogger("memlane.server")

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: body types a JSON route takes (JSON Lines for import); none is a CORS "simple" type, so a
#: browser must ask first (preflight), and this server answers only allowed origins
JSON_TYPES = frozenset({"application/json", "application/x-ndjson", "application/jsonl", "application/x-jsonl",
                        "application/jsonlines", "application/x-jsonlines"})
#: the inspector's HTML forms: they post form bodies, guarded by their CSRF token
FORM_PREFIX = "/ui"
_CORS_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
_CORS_MAX_AGE = "600"


def host_name(host: str) -> str:
    """The name in a ``Host`` header or an origin's netloc, without port or IPv6 brackets, lowercased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() else host.rstrip(":")


def is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_loopback_name(name: str) -> bool:
    """``localhost`` and its subdomains (browsers resolve them to loopback themselves), or a
    loopback address."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` as browsers send it in ``Origin`` (lowercase, default port left out)."""
    parts = urlsplit(origin.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


class BrowserGuard:
    """ASGI middleware: refuses a request that a web page, not the user's own program, could
    have made (see the module docstring), in OpenAI's error envelope."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str] = (), cors_origins: Iterable[str] = ()) -> None:
        self.app = app
        hosts = [h.strip().lower() for h in allowed_hosts if h.strip()]
        self.any_host = "*" in hosts
        self.hosts = frozenset(h for h in hosts if not h.startswith("."))
        self.host_suffixes = tuple(h for h in hosts if h.startswith("."))
        self.origins = frozenset(normalize_origin(o) for o in cors_origins)

    def host_allowed(self, name: str) -> bool:
        return (self.any_host or is_loopback_name(name) or is_ip_address(name) or name in self.hosts
                or any(name.endswith(suffix) or name == suffix[1:] for suffix in self.host_suffixes))

    def origin_allowed(self, origin: str, host: str) -> bool:
        """Loopback pages, this server's own pages (``Origin`` names the ``Host`` asked for) and
        the configured origins; never ``null`` (sandboxed frames, local files, redirects)."""
        if origin == "null":
            return False
        normalized = normalize_origin(origin)
        if normalized in self.origins:
            return True
        name = host_name(urlsplit(normalized).netloc)
        if not name or urlsplit(normalized).scheme not in ("http", "https"):
            return False
        return is_loopback_name(name) or urlsplit(normalized).netloc == host.strip().lower()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for key, value in scope.get("headers", []):
            headers.setdefault(key, value)
        host = headers.get(b"host", b"").decode("latin-1")
        if host and not self.host_allowed(host_name(host)):
            await self._refuse(scope, receive, send, 421,
                               f"this server does not answer to the host {host_name(host)!r}: only loopback names, IP addresses "
                               "and server.allowed_hosts are served (a web page that re-points its own name at this machine "
                               "must not read it); add the name to server.allowed_hosts if it is yours", "host_not_allowed")
            return
        method = scope.get("method", "GET")
        origin = headers.get(b"origin", b"").decode("latin-1")
        allowed_origin = bool(origin) and self.origin_allowed(origin, host)
        if method not in SAFE_METHODS and origin and not allowed_origin:
            await self._refuse(scope, receive, send, 403,
                               f"requests that change state are not taken from pages of the origin {origin!r}; "
                               "allow a web app's origin with server.cors_origins", "origin_not_allowed")
            return
        if method not in SAFE_METHODS and not scope.get("path", "").startswith(FORM_PREFIX) and self._has_body(headers):
            media = headers.get(b"content-type", b"").decode("latin-1").partition(";")[0].strip().lower()
            if not (media in JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))):
                got = f"got {media!r}" if media else "none was given"
                await self._refuse(scope, receive, send, 415,
                                   f"the body must be JSON: send 'Content-Type: application/json' ({got}; "
                                   "with curl: -H 'Content-Type: application/json')", "unsupported_media_type")
                return
        if not (origin and allowed_origin and normalize_origin(origin) in self.origins):
            await self.app(scope, receive, send)
            return
        if method == "OPTIONS" and b"access-control-request-method" in headers:
            await self._preflight(origin, headers, send)
            return
        await self.app(scope, receive, self._with_cors(origin, send))

    @staticmethod
    def _has_body(headers: dict[bytes, bytes]) -> bool:
        length = headers.get(b"content-length")
        if length is not None:
            return length.strip() not in (b"0", b"")
        return b"transfer-encoding" in headers

    @staticmethod
    async def _refuse(scope: dict[str, Any], receive: Receive, send: Send, status: int, message: str, code: str) -> None:
        log.info("refused %s %s (%d %s): %s", str(scope.get("method"))[:16], str(scope.get("path"))[:200], status, code,
                 message.partition(":")[0][:300])
        await envelope(status, message, code=code)(scope, receive, send)

    @staticmethod
    async def _preflight(origin: str, headers: dict[bytes, bytes], send: Send) -> None:
        asked = headers.get(b"access-control-request-headers", b"")
        reply = [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin"),
                 (b"access-control-allow-methods", _CORS_METHODS.encode()), (b"access-control-max-age", _CORS_MAX_AGE.encode()),
                 (b"content-length", b"0")]
        if asked:
            reply.append((b"access-control-allow-headers", asked))
        await send({"type": "http.response.start", "status": 204, "headers": reply})
        await send({"type": "http.response.body", "body": b""})

    @staticmethod
    def _with_cors(origin: str, send: Send) -> Send:
        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"access-control-allow-origin", origin.encode("latin-1")),
                                                  (b"vary", b"Origin")]}
            await send(message)

        return sending
