"""One handler turns every exception into OpenAI's error envelope with the matching status.

``{"error": {"message", "type", "param", "code"}}``; upstream errors keep the upstream's own
status and body, so an SDK pointed at memlane raises what it would raise against the model.

Anthropic's routes (``/v1/messages``) answer in Anthropic's envelope instead,
``{"type": "error", "error": {"type", "message"}}``: ``AnthropicErrors`` rewrites whatever error
is answered there (a handler's, the auth's, the request guards'), and the anthropic SDK's
upstream errors pass through in their own.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Mapping

import anthropic
import httpx2
import openai
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from memlane.errors import MemlaneError

log = logging.getLogger("memlane.server")

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
          409: "conflict_error", 413: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error"}


_SECRETS = re.compile(
    r"(?i)\b(?:sk|ml|pk|rk|key)-[A-Za-z0-9_*.\-]{6,}"  # OpenAI-, memlane- and most vendors' key shapes
    r"|(?i:bearer|token|basic)\s+[A-Za-z0-9_*.=+/\-]{6,}"
    r"|(?i:api[_-]?key|secret|password)[\"']?\s*[:=]\s*[\"']?[^\s\"',}]{4,}"
)


def scrub(text: str) -> str:
    """An upstream's message with anything shaped like a credential replaced: upstreams echo
    (parts of) the key they were sent, and memlane's callers must never see memlane's own."""
    return _SECRETS.sub("[redacted]", text)


def envelope(status: int, message: str, *, param: str | None = None, code: str | None = None, type_: str | None = None,
             headers: Mapping[str, str] | None = None) -> JSONResponse:
    error_type = type_ or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return JSONResponse({"error": {"message": message, "type": error_type, "param": param, "code": code}}, status_code=status,
                        headers=dict(headers) if headers else None)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name.removesuffix("Error") or name).lower()


class StreamAborted(Exception):
    """Raised after a stream's in-band error event, so the server aborts the response (no final
    chunk, no ``[DONE]``): a client that ignores the error event still sees a broken transfer,
    never a truncated answer that looks complete."""


class _QuietAborts(logging.Filter):
    """uvicorn logs every exception that ends a response as a traceback; an aborted stream was
    already logged as one line where it broke."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, StreamAborted):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


def stream_error(exc: BaseException) -> dict[str, Any]:
    """The in-band error event for a stream that broke after it began (OpenAI's SDKs raise on it)."""
    if isinstance(exc, openai.APITimeoutError):
        message, code = "the upstream model server timed out mid-stream", "upstream_timeout"
    elif isinstance(exc, (openai.APIConnectionError, ConnectionError)):
        message, code = "the upstream model server broke off the stream", "upstream_stream_broken"
    elif isinstance(exc, openai.APIError):
        message, code = f"the upstream model server sent an error mid-stream: {scrub(exc.message)}", "upstream_error"
    else:
        message, code = f"internal error mid-stream: {type(exc).__name__}", "internal_error"
    return {"error": {"message": message, "type": "server_error", "param": None, "code": code}}


_QUIET_ABORTS = _QuietAborts()


#: the paths that speak Anthropic's protocol, errors included
ANTHROPIC_PATHS = ("/v1/messages",)
#: Anthropic's error types (``anthropic.types.shared.ErrorType``) by status; other 4xx are
#: invalid_request_error, other 5xx api_error
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error", 403: "permission_error",
                    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 504: "timeout_error",
                    529: "overloaded_error"}


def is_anthropic_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in ANTHROPIC_PATHS)


def anthropic_type(status: int) -> str:
    return _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def anthropic_error(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": anthropic_type(status), "message": message}}


def anthropic_envelope(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(anthropic_error(status, message), status_code=status, headers=dict(headers) if headers else None)


def as_anthropic(status: int, body: bytes) -> bytes:
    """An error body in Anthropic's envelope: OpenAI's is rewritten (its message kept, the type
    Anthropic's for the status), Anthropic's own left as it is."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return body
    if not isinstance(data, dict) or data.get("type") == "error":
        return body
    error = data.get("error")
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return body
    return json.dumps(anthropic_error(status, error["message"]), ensure_ascii=False).encode()


class AnthropicErrors:
    """ASGI middleware (outermost): on Anthropic's paths, an error answered in OpenAI's envelope
    goes out in Anthropic's, with the same status and headers. Other answers stream through
    untouched; only an error's body is held, to be rewritten."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not is_anthropic_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] = {}
        parts: list[bytes] = []

        async def relay(message: Any) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held.update(message)
                return
            if not held or message["type"] != "http.response.body":
                await send(message)
                return
            parts.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = as_anthropic(held["status"], b"".join(parts))
            headers = [(k, v) for k, v in held.get("headers", []) if k.lower() != b"content-length"]
            await send({**held, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, relay)


def anthropic_stream_error(exc: BaseException) -> dict[str, Any]:
    """The ``error`` event that ends an Anthropic stream broken after it began (the anthropic
    SDK raises on it): the upstream's own error event passed on, else one of memlane's."""
    if isinstance(exc, anthropic.APIStatusError) and isinstance(exc.body, dict) and isinstance(exc.body.get("error"), dict):
        error = exc.body["error"]
        return {"type": "error", "error": {"type": str(error.get("type") or "api_error"), "message": scrub(str(error.get("message", "")))}}
    if isinstance(exc, (openai.APITimeoutError, anthropic.APITimeoutError, httpx2.TimeoutException)):
        return {"type": "error", "error": {"type": "timeout_error", "message": "the upstream model server timed out mid-stream"}}
    # (the anthropic SDK's own stream, a call without a scope, raises its HTTP client's errors)
    if isinstance(exc, (openai.APIConnectionError, anthropic.APIConnectionError, httpx2.TransportError, ConnectionError)):
        return {"type": "error", "error": {"type": "api_error", "message": "the upstream model server broke off the stream"}}
    if isinstance(exc, anthropic.APIError):
        return anthropic_error(500, f"the upstream model server sent an error mid-stream: {scrub(exc.message)}")
    return {"type": "error", "error": {"type": "api_error", "message": f"internal error mid-stream: {type(exc).__name__}"}}


def _upstream_error_parts(exc: Any) -> tuple[Any, Any, str]:
    """An upstream error's JSON body (or None), its ``error`` object (or None) and its message
    with credentials scrubbed: what both protocols' pass-through answers are built from."""
    try:
        body = exc.response.json()
    except (json.JSONDecodeError, ValueError):
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    message = scrub(str(error.get("message") if isinstance(error, dict) and error.get("message") else exc.message))
    return body, error, message


def anthropic_upstream_error_response(exc: anthropic.APIStatusError) -> Response:
    """An Anthropic-protocol upstream's error: its status and body pass through (credentials
    scrubbed, its ``retry-after`` kept), but the upstream refusing memlane's own key (401/403)
    is memlane's 502, as with OpenAI upstreams."""
    body, error, message = _upstream_error_parts(exc)
    if exc.status_code in (401, 403):
        return anthropic_envelope(502, f"the upstream model server refused memlane's credentials ({exc.status_code}): {message}; "
                                       "check upstream.anthropic_api_key (or ANTHROPIC_API_KEY) in memlane's config")
    retry = {k: v for k, v in exc.response.headers.items() if k.lower() in ("retry-after", "retry-after-ms")}
    if isinstance(body, dict) and isinstance(error, dict):
        return JSONResponse({**body, "error": {**error, "message": message}}, status_code=exc.status_code, headers=retry or None)
    return anthropic_envelope(exc.status_code, f"upstream error: {message}", retry)


def upstream_error_response(exc: openai.APIStatusError) -> Response:
    """An upstream's error, as memlane's caller should see it. Its status and body pass through
    (an SDK pointed at memlane raises what it would raise against the model), with credentials
    scrubbed from the message; but the upstream rejecting *memlane's* credentials (401/403) is a
    502 of memlane's own, so a caller can tell it from its memlane key being refused."""
    body, error, message = _upstream_error_parts(exc)
    if exc.status_code in (401, 403):
        return envelope(502, f"the upstream model server refused memlane's credentials ({exc.status_code}): {message}; "
                             "check the upstream api_key in memlane's config", code="upstream_auth_failed")
    if isinstance(error, dict):
        return JSONResponse({"error": {**error, "message": message}}, status_code=exc.status_code)
    return envelope(exc.status_code, f"upstream error: {message}", code="upstream_error")


class APIError(Exception):
    """An error the server itself answers (auth, limits, bad bodies)."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def _with_other_slash(request: Request) -> str | None:
    """The path with its trailing slash added or dropped, if a route answers there: a relative
    redirect target. (Starlette's own slash redirect is off: it builds an absolute URL from
    the ``Host`` header, so the answer would point wherever the caller's header said.)"""
    path = request.url.path
    if path == "/":
        return None
    other = path[:-1] if path.endswith("/") else path + "/"
    scope = {**request.scope, "path": other}
    if not any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
        return None
    return other + (f"?{request.url.query}" if request.url.query else "")


def install(app: FastAPI, metrics: Any) -> None:
    app.router.redirect_slashes = False  # see _with_other_slash
    logging.getLogger("uvicorn.error").addFilter(_QUIET_ABORTS)

    @app.exception_handler(APIError)
    async def api_error(_: Request, exc: APIError) -> Response:
        return envelope(exc.status, exc.message, param=exc.param, code=exc.code)

    @app.exception_handler(MemlaneError)
    async def memlane_error(_: Request, exc: MemlaneError) -> Response:
        return envelope(exc.http_status, exc.message, param=exc.param, code=exc.code or _snake(type(exc).__name__))

    @app.exception_handler(openai.APIStatusError)
    async def upstream_status(request: Request, exc: openai.APIStatusError) -> Response:
        metrics.upstream_error(getattr(request.state, "project", None))
        return upstream_error_response(exc)

    @app.exception_handler(openai.APITimeoutError)
    async def upstream_timeout(request: Request, exc: openai.APITimeoutError) -> Response:
        metrics.upstream_error(getattr(request.state, "project", None))
        return envelope(504, "the upstream model server timed out", code="upstream_timeout")

    @app.exception_handler(openai.APIConnectionError)
    async def upstream_down(request: Request, exc: openai.APIConnectionError) -> Response:
        metrics.upstream_error(getattr(request.state, "project", None))
        # the message names the model server's address (proxy/embedded.py): the operator's
        # log gets it, the caller does not need the network layout behind this server
        log.warning("upstream unreachable: %s", exc)
        return envelope(502, "cannot reach the upstream model server (its address is in memlane's log)", code="upstream_unreachable")

    @app.exception_handler(anthropic.APIStatusError)
    async def anthropic_upstream_status(request: Request, exc: anthropic.APIStatusError) -> Response:
        metrics.upstream_error(getattr(request.state, "project", None))
        return anthropic_upstream_error_response(exc)

    @app.exception_handler(anthropic.APITimeoutError)
    async def anthropic_upstream_timeout(request: Request, exc: anthropic.APITimeoutError) -> Response:
        metrics.upstream_error(getattr(request.state, "project", None))
        return anthropic_envelope(504, "the upstream model server timed out")

    @app.exception_handler(anthropic.APIConnectionError)
    async def anthropic_upstream_down(request: Request, exc: anthropic.APIConnectionError) -> Response:
        metrics.upstream_error(getattr(request.state, "project", None))
        log.warning("upstream unreachable: %s", exc)
        return anthropic_envelope(502, "cannot reach the upstream model server (its address is in memlane's log)")

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return envelope(400, f"{where}: {first.get('msg')}" if where else str(first.get("msg")), param=where or None, code="invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and (elsewhere := _with_other_slash(request)) is not None:
            return RedirectResponse(elsewhere, status_code=307)
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 405:
            message = f"method not allowed here; allowed: {(exc.headers or {}).get('Allow', '')}"
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return envelope(exc.status_code, message, code=code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, StreamAborted):  # already logged where the stream broke
            log.exception("unhandled error")
        if is_anthropic_path(request.url.path):  # answered outside every middleware, AnthropicErrors included
            return anthropic_envelope(500, f"internal error: {type(exc).__name__}")
        return envelope(500, f"internal error: {type(exc).__name__}", code="internal_error")
