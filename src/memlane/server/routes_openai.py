"""``POST /v1/chat/completions`` and ``GET /v1/models``: OpenAI's API, with memory.

The body is OpenAI's plus memlane's optional fields (``user_id agent_id run_id metadata
filters limit top_k include_memories``, which SDKs send through ``extra_body``) or the
``X-Memlane-*`` headers. The work is done by ``AsyncMemlane``, the same client a Python app
embeds, so both faces behave the same.
"""

from __future__ import annotations

import json
import logging
from typing import Any, AsyncIterator, Awaitable, Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from memlane.proxy.fields import MemlaneFields
from memlane.proxy.protocols import CHAT, RESPONSES, ChatProtocol
from memlane.server.errors import APIError, StreamAborted, stream_error
from memlane.server.limits import Limits

log = logging.getLogger("memlane.server")



async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except json.JSONDecodeError as exc:
        raise APIError(400, f"the request body is not valid JSON: {exc.msg} at position {exc.pos}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    return body


def sse(data: Any) -> bytes:
    return CHAT.sse(data)


def split_request(protocol: ChatProtocol, body: dict[str, Any]) -> dict[str, Any]:
    """The SDK call's arguments: the protocol's own fields as keywords (``stream`` only when the
    caller sent it: it decides the SDK's return type), every other field untouched in
    ``extra_body``, so fields the SDK does not know (a server's own sampling options) pass too."""
    request = {name: body.pop(name) for name in protocol.sdk_fields if name in body}
    if body:
        request["extra_body"] = body
    return request


def event_stream(protocol: ChatProtocol, result: Any, error_event: Callable[[BaseException], dict[str, Any]]) -> StreamingResponse:
    """A stream's events on the wire as they come, the first carrying memlane's metadata; a
    stream that breaks after it began ends with ``error_event`` and an aborted response (never
    a clean end that would look complete). Every protocol's route answers streams with it."""
    metadata = getattr(result, "metadata", None)

    async def events() -> AsyncIterator[bytes]:
        first = True
        try:
            async for event in result:
                data = event.to_dict(mode="json", exclude_unset=True, warnings=False)
                if first and metadata is not None:
                    data = protocol.with_stream_metadata(data, metadata.model_dump(mode="json", exclude_none=True))
                first = False
                yield protocol.sse(data)
        except Exception as exc:  # noqa: BLE001 - reported in-band, then the response is aborted
            log.warning("stream to the caller aborted: %s: %s", type(exc).__name__, exc)
            yield protocol.sse(error_event(exc))
            raise StreamAborted() from exc
        if protocol.done:
            yield protocol.done

    return StreamingResponse(events(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


def forward(protocol: ChatProtocol, auth: Any, projects: Any, limits: Limits) -> Callable[..., Awaitable[Response]]:
    """The route of one protocol: memlane's fields out of the body (or headers) into typed
    values, the rest to the pipeline, the answer (JSON or the event stream) back as it came."""

    async def route(request: Request, project: str = Depends(auth)) -> Response:
        body = await json_body(request)
        ours = MemlaneFields.pop_from(body, request.headers)
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise APIError(400, "model is required and must be a string", param="model", code="missing_model")
        name, turns = protocol.turns_field, body.get(protocol.turns_field)
        if not ((isinstance(turns, list) and turns) or (protocol.text_turns and isinstance(turns, str) and turns)):
            raise APIError(400, f"{name} is required and must be a non-empty {protocol.turns_shape}", param=name, code=f"invalid_{name}")
        if isinstance(turns, list):
            limits.check_messages(turns)
        limits.check_fields(ours)
        stream = protocol.streams(body)
        result = await projects.client(project).forward(protocol, split_request(protocol, body), ours)
        if not stream:
            return JSONResponse(result.to_dict(mode="json", exclude_unset=True))
        return event_stream(protocol, result, lambda exc: protocol.stream_error(stream_error(exc)))

    return route


def router(auth: Any, projects: Any, limits: Limits) -> APIRouter:
    api = APIRouter(tags=["openai"])
    api.add_api_route("/v1/chat/completions", forward(CHAT, auth, projects, limits), methods=["POST"],
                      summary="Create a chat completion, with memory")
    api.add_api_route("/v1/responses", forward(RESPONSES, auth, projects, limits), methods=["POST"],
                      summary="Create a response (OpenAI's Responses API), with memory")

    @api.post("/v1/embeddings", summary="Embeddings from the upstream, passed through (one base URL serves every call)")
    async def embeddings(request: Request, project: str = Depends(auth)) -> Response:
        body = await json_body(request)
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise APIError(400, "model is required and must be a string", param="model", code="missing_model")
        given = body.get("input")
        texts = given if isinstance(given, list) else [given]
        if not texts or not all(isinstance(t, str) and t or isinstance(t, int) and not isinstance(t, bool) or
                                isinstance(t, list) and t and all(isinstance(n, int) and not isinstance(n, bool) for n in t)
                                for t in texts):
            raise APIError(400, "input must be a non-empty string, an array of strings, or token arrays", param="input", code="invalid_input")
        known = {name: body.pop(name) for name in ("model", "input", "encoding_format", "dimensions", "user") if name in body}
        answer = await projects.client(project).upstream.embeddings.create(**known, extra_body=body or None)
        return JSONResponse(answer.to_dict(mode="json", exclude_unset=True))

    @api.get("/v1/models", summary="The upstream's models")
    async def models(project: str = Depends(auth)) -> Response:
        page = await projects.client(project).upstream.models.list()
        return JSONResponse({"object": "list", "data": [m.to_dict(mode="json") for m in page.data]})

    return api
