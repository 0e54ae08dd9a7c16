"""The memory REST API: the engine's methods over HTTP, same shapes (product.md section 5)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any, Iterator

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from memlane.engine.learner import HURRY_SECONDS
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
    expiration_date: Any = Field(None, description="The memories made are not recalled, searched or listed after it (unless "
                                 "show_expired): YYYY-MM-DD (through that day, UTC) or an ISO 8601 datetime",
                                 json_schema_extra={"type": ["string", "null"]})
    immutable: bool = Field(False, description="reconciliation never updates or deletes the memories made, and PUT refuses to")
    custom_instructions: str | None = Field(None, description="infer=true: what this add's extraction keeps (instead of the project's)")
    custom_categories: list[Any] | None = Field(None, description='infer=true: the categories facts are filed under: names or {"name": "description"}')


class SearchBody(_ScopedBody):
    query: str
    limit: int | None = None
    top_k: int | None = None
    threshold: float | None = None
    #: false keeps the fused order for this search; true (or unset) reranks when a reranker is configured
    rerank: bool | None = None
    show_expired: bool = Field(False, description="expired memories too")
    categories: list[str] | None = Field(None, description="memories whose metadata.categories holds one of these")
    reference_date: Any = Field(None, description="what relative dates in the query (\"last week\") count back from: YYYY-MM-DD,"
                                " ISO 8601 or Unix seconds; default the scope's latest memory",
                                json_schema_extra={"type": ["string", "number", "null"]})
    keyword_search: bool | None = Field(None, description="false: the dense signal alone (the search is hybrid otherwise)")
    fields: list[str] | None = Field(None, description="the keys each result keeps")
    latest_only: bool | None = Field(None, description="accepted: every memory is its latest version (updates rewrite in place)")


#: mem0's search options beyond the query, scope, limit, threshold and rerank, by their engine names
SEARCH_OPTIONS = ("show_expired", "categories", "reference_date", "keyword_search", "fields", "latest_only")

#: the header that says a search's ``rerank: true`` changed nothing
WARNING_HEADER = "X-Memlane-Warning"


def rerank_warning(engine: Any, rerank: Any, response: Response) -> None:
    """``rerank: true`` on a server with no reranker is ignored, and the answer says so in a
    header (the body keeps the engine's shape); a ``rerank`` that is not a boolean is a 400."""
    if rerank is not None and not isinstance(rerank, bool):
        raise APIError(400, f"rerank must be true or false, got {rerank!r}", param="rerank", code="invalid_request")
    if rerank and getattr(engine, "reranking", None) is None:
        response.headers[WARNING_HEADER] = "rerank ignored: this server has no reranker configured (docs/rerankers.md)"


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
    expiration_date: Any = Field(None, description="a new expiration (YYYY-MM-DD or ISO 8601); null clears it; absent keeps it",
                                 json_schema_extra={"type": ["string", "null"]})


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


async def update_memory(projects: Any, project: str, memory_id: str, text: str | None, metadata: dict[str, Any] | None,
                        expiry: dict[str, Any] | None = None) -> Any:
    """PUT semantics shared with the mem0 routes: new text and/or metadata and/or expiry;
    metadata alone keeps the text (the engine reads it under the scope lock, so a concurrent
    text update is never lost). ``expiry``: ``{"expiration_date": value}`` when the body named
    it (null clears it), else None (kept)."""
    if text is None and metadata is None and expiry is None:
        raise APIError(400, "give text (or data), metadata and/or expiration_date", param="text", code="nothing_to_update")
    return await projects.run(project, projects.engine(project).update, memory_id, text, metadata=metadata, **(expiry or {}))


def router(auth: Any, projects: Any, limits: Limits) -> APIRouter:
    api = APIRouter(prefix="/v1/memories", tags=["memories"])

    def engine(project: str) -> Any:
        return projects.engine(project)

    @api.post("", summary="Add memories (infer=true extracts facts with the memory LLM)")
    async def add(body: AddBody, project: str = Depends(auth)) -> dict[str, Any]:
        run = projects.run_slow if body.infer else projects.run  # infer waits on the memory LLM
        return await run(project, engine(project).add, body.messages, user_id=body.user_id, agent_id=body.agent_id,
                               run_id=body.run_id, metadata=body.metadata, filters=body.filters, infer=body.infer,
                               timestamp=body.timestamp, expiration_date=body.expiration_date, immutable=body.immutable,
                               custom_instructions=body.custom_instructions, custom_categories=body.custom_categories)

    @api.get("", summary="List a scope's memories, newest first")
    async def list_memories(
        project: str = Depends(auth), user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
        filters: str | None = Query(None, description="filter JSON"), limit: int = Query(100, ge=1),
        show_expired: bool = Query(False, description="expired memories too"),
        categories: list[str] | None = Query(None, description="memories whose metadata.categories holds one of these (repeat it)"),
    ) -> dict[str, Any]:
        limits.check_limit(limit)
        return await projects.run(project, engine(project).get_all, user_id=user_id, agent_id=agent_id, run_id=run_id,
                               filters=parse_filters_param(filters), limit=limit, show_expired=show_expired, categories=categories)

    @api.delete("", summary="Delete every memory of a scope")
    async def delete_scope(
        project: str = Depends(auth), user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
        filters: str | None = Query(None, description="filter JSON"),
    ) -> dict[str, str]:
        return await projects.run_slow(project, engine(project).delete_all, user_id=user_id, agent_id=agent_id, run_id=run_id,
                               filters=parse_filters_param(filters))

    @api.post("/search", summary="Hybrid search within a scope")
    async def search(body: SearchBody, response: Response, project: str = Depends(auth)) -> dict[str, Any]:
        limits.check_limit(body.limit)
        limits.check_limit(body.top_k, "top_k")
        rerank_warning(engine(project), body.rerank, response)
        return await projects.run(project, engine(project).search, body.query, user_id=body.user_id, agent_id=body.agent_id,
                               run_id=body.run_id, filters=body.filters, limit=body.limit, top_k=body.top_k, threshold=body.threshold,
                               rerank=body.rerank, **body.model_dump(include=set(SEARCH_OPTIONS)))

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
        expiry = {"expiration_date": body.expiration_date} if "expiration_date" in body.model_fields_set else None
        return await update_memory(projects, project, memory_id, text, body.metadata, expiry)

    @api.delete("/{memory_id}", summary="Delete one memory (its history stays)")
    async def delete(memory_id: str, project: str = Depends(auth)) -> dict[str, str]:
        return await projects.run(project, engine(project).delete, memory_id)

    @api.get("/{memory_id}/history", summary="Every change of one memory, oldest first")
    async def history(memory_id: str, project: str = Depends(auth)) -> list[dict[str, Any]]:
        return await projects.run(project, engine(project).history, memory_id)

    return api


def users_router(auth: Any, projects: Any) -> APIRouter:
    api = APIRouter(prefix="/v1/users", tags=["memories"])

    @api.delete("", summary="Delete every memory of a user, agent or run (any of its scopes), or with none given of every one")
    async def delete_users(project: str = Depends(auth), user_id: str | None = None, agent_id: str | None = None,
                           run_id: str | None = None) -> dict[str, Any]:
        return await projects.run_slow(project, projects.engine(project).delete_users, user_id=user_id, agent_id=agent_id,
                                       run_id=run_id)

    return api


def exchanges_router(auth: Any, projects: Any, limits: Limits) -> APIRouter:
    api = APIRouter(prefix="/v1/exchanges", tags=["memories"])

    @api.post("", summary="Queue an exchange to learn from, as a chat through the server would (hosted resync); "
                          "idempotent: a replay returns the first id")
    async def enqueue(body: ExchangeIn, project: str = Depends(auth),
                      idempotency_key: str | None = Header(None, max_length=MAX_KEY_CHARS, pattern=KEY_PATTERN,
                                                           description="the client's key for this exchange (else body.id, else its content)")
                      ) -> dict[str, Any]:
        limits.check_metadata(body.metadata)
        limits.check_messages(body.messages)
        exchange = body.model_dump(exclude={"id"})
        engine = projects.engine(project)
        item_id = await projects.run(project, engine.enqueue, exchange, idempotency_key=replay_key(exchange, idempotency_key or body.id))
        state = (await projects.run(project, engine.exchange_states, [item_id])).get(item_id)
        return {"id": item_id, "status": state.status if state is not None else "learnt"}

    @api.get("/{exchange_id}", summary="An exchange's state (queued, learnt, dead); wait=SECONDS waits while it is queued")
    async def state(exchange_id: str, project: str = Depends(auth),
                    wait: float = Query(0.0, ge=0, le=MAX_WAIT_SECONDS, description=f"seconds to wait while it is queued (at most {MAX_WAIT_SECONDS:g})")
                    ) -> dict[str, Any]:
        engine = projects.engine(project)
        deadline = time.monotonic() + wait
        pause = 0.02
        hurried_at: float | None = None
        while True:  # each look is one quick read; the wait between holds no thread
            found = (await projects.run(project, engine.exchange_states, [exchange_id])).get(exchange_id)
            if found is None:
                raise APIError(404, f"no exchange {exchange_id!r} in this project (an exchange learnt from is remembered"
                                    " for a day)", param="exchange_id", code="exchange_not_found")
            left = deadline - time.monotonic()
            if found.status != "queued" or left <= 0:
                return found.to_dict()
            now = time.monotonic()
            if hurried_at is None or now - hurried_at >= HURRY_SECONDS / 2:  # (again before it wears off)
                projects.hurry(project)
                hurried_at = now
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 1.5, 0.25)

    return api


#: the longest ``GET /v1/exchanges/{id}?wait=`` (a client waiting longer asks again)
MAX_WAIT_SECONDS = 60.0
#: the longest idempotency key (``Idempotency-Key`` or the body's ``id``), and its characters
#: (printable ASCII, as in an HTTP header)
MAX_KEY_CHARS = 200
KEY_PATTERN = r"^[!-~]+$"


class ExchangeIn(ExchangeBody):
    """An exchange to queue, with the client's own id for it: a replay (a resync after a lost
    answer, a retried request) returns the first exchange's id and is learnt from once."""

    id: str | None = Field(None, min_length=1, max_length=MAX_KEY_CHARS, pattern=KEY_PATTERN,
                           description="the client's id for this exchange (without one, its content is the key)")


def replay_key(exchange: dict[str, Any], client_key: str | None) -> str:
    """What makes two ``POST /v1/exchanges`` the same exchange: the client's key when it sent
    one, else a hash of what would be learnt (scope, messages, metadata, model)."""
    if client_key:
        return "client:" + client_key
    canonical = json.dumps(exchange, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8", errors="surrogatepass")).hexdigest()
