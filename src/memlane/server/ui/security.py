"""The inspector's browser-side defences: response headers on every ``/ui`` answer, and the
names and attributes of its two cookies.

Headers (:class:`SecurityHeaders`, on every ``/ui`` response, redirects and refusals included):
no other site may frame the pages (clickjacking a Delete button: ``X-Frame-Options: DENY`` and
CSP ``frame-ancestors 'none'``), no content is sniffed into another type, no URL (scope ids
are in query strings) leaks to another site in ``Referer``, and the Content-Security-Policy
allows what the pages use and nothing else: one stylesheet from the server itself, no script
at all, forms that post back to this server. The charts are inline SVG drawn with presentation
attributes, which CSP does not govern.

Cookies: the session (``memlane_session``, see ``server.keys``: a random token, never the API
key) and the CSRF token of the double-submit forms (``memlane_csrf``). Over https both get the
``__Host-`` prefix, which makes the browser insist on ``Secure``, ``Path=/`` and no ``Domain``,
so a sibling subdomain cannot plant its own token or session (cookie tossing defeats a
double-submit check). Browsers refuse ``__Host-`` cookies that are not ``Secure``, and on plain
http (the loopback default) ``Secure`` cookies are not stored, so there the cookies keep their
plain names, scoped to ``Path=/ui``. Either way they are HttpOnly and SameSite=Strict.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "memlane_session"
CSRF_COOKIE = "memlane_csrf"
HOST_PREFIX = "__Host-"

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "style-src 'self'",
    "img-src 'self' data:",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
])
HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def _is_ui(path: str) -> bool:
    return path == "/ui" or path.startswith("/ui/")


class SecurityHeaders:
    """ASGI middleware: :data:`HEADERS` on every response to a ``/ui`` path (outermost, so the
    refusals of the other middleware get them too)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_ui(scope.get("path", "")):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in HEADERS.items() if k.encode() not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def cookie_name(base: str, request: Request) -> str:
    """``base`` with the ``__Host-`` prefix over https, plain over http (see the module doc)."""
    return HOST_PREFIX + base if _secure(request) else base


def read_cookie(base: str, request: Request) -> str:
    return request.cookies.get(cookie_name(base, request), "")


def set_cookie(response: Response, base: str, value: str, request: Request, *, max_age: int | None = None) -> None:
    secure = _secure(request)
    attributes: dict[str, Any] = {"httponly": True, "samesite": "strict", "secure": secure, "path": "/" if secure else "/ui"}
    response.set_cookie(cookie_name(base, request), value, max_age=max_age, **attributes)


def delete_cookie(response: Response, base: str, request: Request) -> None:
    secure = _secure(request)
    response.delete_cookie(cookie_name(base, request), path="/" if secure else "/ui", secure=secure, httponly=True,
                           samesite="strict")
