"""The memory REST API: the engine's methods over HTTP, same shapes (product.md section 5)."""

from __future__ import annotations

import json
from typing import Any, Iterator

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from memlane.server.errors import APIError
from memlane.server.limits import Limits, json_depth


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _ScopedBody(_Body):
    """The scope ids and the filter every scoped call takes."""

    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    filters: dict[str, Any] | None = None


class AddBody(_ScopedBody):
    messages: Any
    metadata: dict[str, Any] | None = None
    infer: bool = True
    #: checked by the engine, whose error names the field (a union here would answer "timestamp.int")
    timestamp: Any = Field(None, description="When the conversation happened: Unix seconds (as mem0's Platform add takes it)"
                                                " or ISO 8601 text; default now", json_schema_extra={"type": ["number", "string", "null"]})


class SearchBody(_ScopedBody):
    query: str
    limit: int | None = None
    top_k: int | None = None
    threshold: float | None = None


class ExchangeBody(_Body):
    """One exchange to learn from, as a chat would queue it (the hosted client's resync)."""

    scope: dict[str, str]
    messages: list[dict[str, Any]]
    metadata: dict[str, Any] | None = None
    model: str | None = None


class UpdateBody(_Body):
    text: str | None = None
    data: str | None = None
    metadata: dict[str, Any] | None = None


def parse_filters_param(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    if json_depth(raw.encode()) > 64:
        raise APIError(400, "filters nest arrays/objects more than 64 levels deep", param="filters", code="invalid_filters")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise APIError(400, f"filters is not valid JSON: {exc.msg}", param="filters", code="invalid_filters") from None
    if not isinstance(value, dict):
        raise APIError(400, "filters must be a JSON object", param="filters", code="invalid_filters")
    return value


async def update_memory(projects: Any, project: str, memory_id: str, text: str | None, metadata: dict[str, Any] | None) -> Any:
    """PUT semantics shared with the mem0 routes: new text and/or metadata; metadata alone keeps
    the text (the engine reads it under the scope lock, so a concurrent text update is never lost)."""
    if text is None and metadata is None:
        raise APIError(400, "give text (or data) and/or metadata", param="text", code="nothing_to_update")
    return await projects.run(project, projects.engine(project).update, memory_id, text, metadata=metadata)


def router(auth: Any, projects: Any, limits: Limits) -> APIRouter:
    api = APIRouter(prefix="/v1/memories", tags=["memories"])

    def engine(project: str) -> Any:
        return projects.engine(project)

    @api.post("", summary="Add memories (infer=true extracts facts with the memory LLM)")
    async def add(body: AddBody, project: str = Depends(auth)) -> dict[str, Any]:
        run = projects.run_slow if body.infer else projects.run  # infer waits on the memory LLM
        return await run(project, engine(project).add, body.messages, user_id=body.user_id, agent_id=body.agent_id,
                               run_id=body.run_id, metadata=body.metadata, filters=body.filters, infer=body.infer,
                               timestamp=body.timestamp)

    @api.get("", summary="List a scope's memories, newest first")
    async def list_memories(
        project: str = Depends(auth), user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
        filters: str | None = Query(None, description="filter JSON"), limit: int = Query(100, ge=1),
    ) -> dict[str, Any]:
        limits.check_limit(limit)
        return await projects.run(project, engine(project).get_all, user_id=user_id, agent_id=agent_id, run_id=run_id,
                               filters=parse_filters_param(filters), limit=limit)

    @api.delete("", summary="Delete every memory of a scope")
    async def delete_scope(
        project: str = Depends(auth), user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
        filters: str | None = Query(None, description="filter JSON"),
    ) -> dict[str, str]:
        return await projects.run_slow(project, engine(project).delete_all, user_id=user_id, agent_id=agent_id, run_id=run_id,
                               filters=parse_filters_param(filters))

    @api.post("/search", summary="Hybrid search within a scope")
    async def search(body: SearchBody, project: str = Depends(auth)) -> dict[str, Any]:
        limits.check_limit(body.limit)
        limits.check_limit(body.top_k, "top_k")
        return await projects.run(project, engine(project).search, body.query, user_id=body.user_id, agent_id=body.agent_id,
                               run_id=body.run_id, filters=body.filters, limit=body.limit, top_k=body.top_k, threshold=body.threshold)

    @api.get("/export", summary="Export memories with their history as JSONL (one memory per line)",
             response_class=StreamingResponse)
    async def export(
        project: str = Depends(auth), user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
        filters: str | None = Query(None, description="filter JSON"),
    ) -> StreamingResponse:
        records = await projects.run_slow(project, lambda: list(engine(project).export(
            user_id=user_id, agent_id=agent_id, run_id=run_id, filters=parse_filters_param(filters))))

        def lines() -> Iterator[bytes]:
            for record in records:
                yield (json.dumps(record, ensure_ascii=False) + "\n").encode()

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @api.post("/import", summary="Import JSONL written by export (ids, history kept; re-embedded here)")
    async def import_(request: Request, project: str = Depends(auth)) -> dict[str, int]:
        raw = (await request.body()).decode("utf-8", errors="replace")
        records = []
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise APIError(400, f"line {number} is not valid JSON: {exc.msg}", param="body", code="invalid_jsonl") from None
        return await projects.run_slow(project, engine(project).import_records, records)

    @api.get("/{memory_id}", summary="One memory")
    async def get(memory_id: str, project: str = Depends(auth)) -> dict[str, Any]:
        return await projects.run(project, engine(project).get, memory_id)

    @api.put("/{memory_id}", summary="Change a memory's text and/or metadata")
    async def update(memory_id: str, body: UpdateBody, project: str = Depends(auth)) -> dict[str, Any]:
        text = body.text if body.text is not None else body.data
        return await update_memory(projects, project, memory_id, text, body.metadata)

    @api.delete("/{memory_id}", summary="Delete one memory (its history stays)")
    async def delete(memory_id: str, project: str = Depends(auth)) -> dict[str, str]:
        return await projects.run(project, engine(project).delete, memory_id)

    @api.get("/{memory_id}/history", summary="Every change of one memory, oldest first")
    async def history(memory_id: str, project: str = Depends(auth)) -> list[dict[str, Any]]:
        return await projects.run(project, engine(project).history, memory_id)

    return api


def exchanges_router(auth: Any, projects: Any, limits: Limits) -> APIRouter:
    api = APIRouter(prefix="/v1/exchanges", tags=["memories"])

    @api.post("", summary="Queue an exchange to learn from, as a chat through the server would (hosted resync)")
    async def enqueue(body: ExchangeBody, project: str = Depends(auth)) -> dict[str, str]:
        limits.check_metadata(body.metadata)
        limits.check_messages(body.messages)
        item_id = await projects.run(project, projects.engine(project).enqueue, body.model_dump())
        return {"id": item_id, "status": "queued"}

    return api
