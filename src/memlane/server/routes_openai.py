"""``POST /v1/chat/completions`` and ``GET /v1/models``: OpenAI's API, with memory.

The body is OpenAI's plus memlane's optional fields (``user_id agent_id run_id metadata
filters limit top_k include_memories``, which SDKs send through ``extra_body``) or the
``X-Memlane-*`` headers. The work is done by ``AsyncMemlane``, the same client a Python app
embeds, so both faces behave the same.
"""

from __future__ import annotations

import json
import logging
from typing import Any, AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from memlane.proxy.fields import MemlaneFields
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
    return f"data: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


def router(auth: Any, projects: Any, limits: Limits) -> APIRouter:
    api = APIRouter(tags=["openai"])

    @api.post("/v1/chat/completions", summary="Create a chat completion, with memory")
    async def chat_completions(request: Request, project: str = Depends(auth)) -> Response:
        body = await json_body(request)
        ours = MemlaneFields.pop_from(body, request.headers)
        messages = body.pop("messages", None)
        model = body.pop("model", None)
        if not isinstance(model, str) or not model:
            raise APIError(400, "model is required and must be a string", param="model", code="missing_model")
        if not isinstance(messages, list) or not messages:
            raise APIError(400, "messages is required and must be a non-empty array", param="messages", code="invalid_messages")
        limits.check_chat(messages, ours)
        # ``stream`` travels as the SDK's own argument (it decides the return type), and only when
        # the caller sent it; every other field goes through untouched as extra_body.
        passed = {"stream": body.pop("stream")} if "stream" in body else {}
        stream = bool(passed.get("stream"))
        client = projects.client(project)
        result = await client.chat.completions.create(
            messages=messages, model=model, extra_body=body or None, **passed, **ours.as_body()
        )
        if not stream:
            return JSONResponse(result.to_dict(mode="json", exclude_unset=True))
        metadata = getattr(result, "metadata", None)

        async def events() -> AsyncIterator[bytes]:
            first = True
            try:
                async for chunk in result:
                    data = chunk.to_dict(mode="json", exclude_unset=True)
                    if first and metadata is not None:
                        data["metadata"] = metadata.model_dump(mode="json", exclude_none=True)
                    first = False
                    yield sse(data)
            except Exception as exc:  # noqa: BLE001 - reported in-band, then the response is aborted
                log.warning("stream to the caller aborted: %s: %s", type(exc).__name__, exc)
                yield sse(stream_error(exc))
                raise StreamAborted() from exc
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers={"cache-control": "no-cache"})

    @api.get("/v1/models", summary="The upstream's models")
    async def models(project: str = Depends(auth)) -> Response:
        page = await projects.client(project).upstream.models.list()
        return JSONResponse({"object": "list", "data": [m.to_dict(mode="json") for m in page.data]})

    return api
