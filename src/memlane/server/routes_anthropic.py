"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens``: Anthropic's Messages API, with memory.

Point the anthropic SDK at memlane (``anthropic.Anthropic(base_url="http://127.0.0.1:8765")``:
the SDK adds ``/v1``). The body is Anthropic's plus memlane's optional fields (``user_id agent_id
run_id filters limit top_k include_memories``, ``extra_body`` in the SDK) or the ``X-Memlane-*``
headers, as on the chat route; Anthropic's own ``metadata`` goes to the model. The key comes as
``x-api-key`` or ``Authorization: Bearer``; ``anthropic-version`` and ``anthropic-beta`` go on to
the model server. Answers are Anthropic's JSON or its named SSE events, passed through as they
come (the first event, ``message_start``, carries memlane's ``metadata`` on its message); every
error is in Anthropic's envelope (``server.errors.AnthropicErrors``). The work is the one
pipeline every protocol takes (``EmbeddedBackend.arun`` with the Messages adapter).
"""

from __future__ import annotations

from typing import Any, Mapping

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from memlane.proxy.fields import MemlaneFields
from memlane.proxy.protocols import MESSAGES
from memlane.server.errors import AnthropicErrors, APIError, anthropic_stream_error
from memlane.server.limits import Limits
from memlane.server.routes_openai import event_stream, json_body

#: the caller's headers that go on to the model server (the API version and beta features it asks for)
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")


#: the anthropic SDK's own keyword arguments, which are not fields of Anthropic's API
SDK_OPTIONS = ("extra_headers", "extra_query", "extra_body", "timeout")


def forwarded(request: Request) -> dict[str, str]:
    return {name: request.headers[name] for name in FORWARDED_HEADERS if name in request.headers}


def for_the_sdk(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """The body as the SDK call's arguments: a body field named like one of the SDK's own options
    stays a body field (``extra_body``); the forwarded headers become ``extra_headers``."""
    stray = {name: body.pop(name) for name in SDK_OPTIONS if name in body}
    if stray:
        body["extra_body"] = stray
    if headers := forwarded(request):
        body["extra_headers"] = headers
    return body


def take_ours(request: Request, body: dict[str, Any]) -> MemlaneFields:
    """memlane's fields out of the body (or headers); Anthropic's ``metadata`` stays for the model."""
    theirs = {"metadata": body.pop("metadata")} if "metadata" in body else {}
    ours = MemlaneFields.pop_from(body, request.headers)
    body.update(theirs)
    return ours


def check(body: Mapping[str, Any], *, counting: bool = False) -> None:
    """What the SDK call needs, refused as Anthropic would refuse it (400), before any recall."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise APIError(400, "model: a string is required", param="model", code="missing_model")
    if not counting and (not isinstance(body.get("max_tokens"), int) or isinstance(body["max_tokens"], bool)):
        raise APIError(400, "max_tokens: an integer is required", param="max_tokens", code="invalid_max_tokens")
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        raise APIError(400, "messages: a non-empty array is required", param="messages", code="invalid_messages")


def router(auth: Any, projects: Any, limits: Limits) -> APIRouter:
    api = APIRouter(tags=["anthropic"])

    @api.post("/v1/messages", summary="Create a message (Anthropic's Messages API), with memory")
    async def messages(request: Request, project: str = Depends(auth.anthropic)) -> Response:
        body = await json_body(request)
        ours = take_ours(request, body)
        check(body)
        limits.check_messages(body["messages"])
        limits.check_limit(ours.limit)
        limits.check_limit(ours.top_k, "top_k")
        result = await projects.client(project).forward(MESSAGES, for_the_sdk(request, body), ours)
        if not body.get("stream"):
            return JSONResponse(result.to_dict(mode="json", exclude_unset=True, warnings=False))
        return event_stream(MESSAGES, result, anthropic_stream_error)

    @api.post("/v1/messages/count_tokens", summary="Count a message's tokens (passed through to the model server)")
    async def count_tokens(request: Request, project: str = Depends(auth.anthropic)) -> Response:
        body = await json_body(request)
        take_ours(request, body)  # memlane's fields never reach the model server
        check(body, counting=True)
        client = projects.client(project).upstream_for(MESSAGES)
        counted = await client.messages.count_tokens(**MESSAGES.count_arguments(for_the_sdk(request, body)))
        return JSONResponse(counted.to_dict(mode="json", exclude_unset=True, warnings=False))

    return api


def install(app: FastAPI, auth: Any, projects: Any, limits: Limits) -> None:
    """The routes, and Anthropic's error envelope on them (added last: the outermost middleware,
    so the request guards' refusals are rewritten too)."""
    app.include_router(router(auth, projects, limits))
    app.add_middleware(AnthropicErrors)
