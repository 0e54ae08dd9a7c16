"""The Mem0 Platform REST subset that ``mem0ai``'s ``MemoryClient`` calls (product.md appendix),
so a mem0 user points an existing client at memlane by changing its host.

Unknown fields are accepted and ignored, as the platform does; platform-only features answer a
clear error. Same engine, same shapes as the memlane REST API.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from memlane.engine.guidance import project_update
from memlane.engine.validation import resolve_scope
from memlane.query.filters import SCOPE_FIELDS
from memlane.server.errors import APIError
from memlane.server.limits import Limits
from memlane.server.routes_memories import SEARCH_OPTIONS, rerank_warning, update_memory
from memlane.server.routes_openai import json_body

ENTITY_TYPES = {"user": "user_id", "agent": "agent_id", "run": "run_id"}


def _scope_kwargs(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in SCOPE_FIELDS if body.get(k) is not None}


def _filters(body: dict[str, Any]) -> dict[str, Any]:
    """The body's ``filters`` object with its top-level scope ids (mem0 sends either)."""
    filters = body.get("filters")
    if filters is not None and not isinstance(filters, dict):
        raise APIError(400, f"filters must be a JSON object, got {type(filters).__name__}", param="filters", code="invalid_filters")
    return {**(filters or {}), **_scope_kwargs(body)}


def _infer(body: dict[str, Any]) -> bool:
    infer = body.get("infer", True)
    if not isinstance(infer, bool):
        raise APIError(400, f"infer must be true or false, got {infer!r}", param="infer", code="invalid_request")
    return infer


#: mem0's add and get_all options the engine takes under the same names (search's: SEARCH_OPTIONS)
ADD_OPTIONS = ("expiration_date", "immutable", "custom_instructions", "custom_categories")
LIST_OPTIONS = ("show_expired", "categories", "latest_only")


def _options(body: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The options the body gives (mem0's client sends only those that are set)."""
    return {name: body[name] for name in names if body.get(name) is not None}


def export_id(filters: dict[str, Any]) -> str:
    """An export's id: its filters, encoded. An export is the memories its filters select when
    it is fetched (memlane keeps no copy), so the id holds all it needs, on any instance."""
    raw = json.dumps(filters, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return "memexp_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def export_filters(memory_export_id: Any) -> dict[str, Any]:
    """The filters an ``export_id`` holds; a 404 for an id this server did not make."""
    try:
        if not isinstance(memory_export_id, str) or not memory_export_id.startswith("memexp_"):
            raise ValueError
        encoded = memory_export_id[len("memexp_"):]
        filters = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        if not isinstance(filters, dict):
            raise ValueError
        return filters
    except (ValueError, UnicodeDecodeError):
        raise APIError(404, f"no memory export {str(memory_export_id)[:80]!r} (create one with create_memory_export)",
                       param="memory_export_id", code="export_not_found") from None


def router(auth: Any, projects: Any, limits: Limits) -> APIRouter:
    api = APIRouter(tags=["mem0 compatibility"])

    def engine(project: str) -> Any:
        return projects.engine(project)

    @api.get("/v1/ping/", summary="mem0 MemoryClient start-up check")
    async def ping(project: str = Depends(auth)) -> dict[str, Any]:
        return {"status": "ok", "org_id": "memlane", "project_id": project, "user_email": None}

    def own_project(project: str, org_id: str, project_id: str) -> None:
        if org_id != "memlane" or project_id != project:  # what ping told the client; another project's id is unknown
            raise APIError(404, f"project {project_id!r} not found", param="project_id", code="not_found")

    @api.get("/api/v1/orgs/organizations/{org_id}/projects/{project_id}/", summary="mem0 get_project")
    async def get_project(org_id: str, project_id: str, fields: list[str] | None = Query(None),
                          project: str = Depends(auth)) -> dict[str, Any]:
        own_project(project, org_id, project_id)
        return await projects.run(project, engine(project).get_project, fields)

    @api.patch("/api/v1/orgs/organizations/{org_id}/projects/{project_id}/", summary="mem0 update_project")
    async def update_project(org_id: str, project_id: str, request: Request, project: str = Depends(auth)) -> dict[str, Any]:
        own_project(project, org_id, project_id)
        return await projects.run(project, engine(project).update_project, **project_update(await json_body(request)))

    @api.post("/v3/memories/add/", summary="mem0 add")
    @api.post("/v1/memories/", summary="mem0 add (older clients)")
    async def add(request: Request, project: str = Depends(auth)) -> dict[str, Any]:
        body = await json_body(request)
        if "messages" not in body:
            raise APIError(400, "messages is required", param="messages", code="invalid_messages")
        infer = _infer(body)
        return await (projects.run_slow if infer else projects.run)(  # infer waits on the memory LLM
            project, engine(project).add, body["messages"], **_scope_kwargs(body), metadata=body.get("metadata"),
            filters=body.get("filters"), infer=infer, timestamp=body.get("timestamp"),
            **_options(body, ADD_OPTIONS),
        )

    @api.post("/v3/memories/", summary="mem0 get_all")
    @api.post("/v2/memories/", summary="mem0 get_all (older clients)")
    async def get_all(request: Request, project: str = Depends(auth), page: int = Query(1, ge=1),
                      page_size: int = Query(100, ge=1)) -> dict[str, Any]:
        body = await json_body(request)
        limits.check_limit(page_size, "page_size")
        found = await projects.run(project, engine(project).get_page, filters=_filters(body), page=page, page_size=page_size,
                                   **_options(body, LIST_OPTIONS))
        # path-relative links: built from the Host header they would point wherever the caller says
        here = request.url.path
        nxt = f"{here}?page={page + 1}&page_size={page_size}" if page * page_size < found["count"] else None
        prev = f"{here}?page={page - 1}&page_size={page_size}" if page > 1 else None
        return {"count": found["count"], "next": nxt, "previous": prev, "results": found["results"]}

    @api.post("/v3/memories/search/", summary="mem0 search")
    @api.post("/v2/memories/search/", summary="mem0 search (older clients)")
    async def search(request: Request, response: Response, project: str = Depends(auth)) -> dict[str, Any]:
        body = await json_body(request)
        query = body.get("query")
        filters = _filters(body)
        top_k, limit = body.get("top_k"), body.get("limit")
        limits.check_limit(top_k, "top_k")
        limits.check_limit(limit)
        # mem0's rerank: the configured reranker (on unless false); without one, a warning header
        rerank_warning(engine(project), body.get("rerank"), response)
        return await projects.run(project, engine(project).search, query, filters=filters, limit=limit, top_k=top_k,
                                  threshold=body.get("threshold"), rerank=body.get("rerank"), **_options(body, SEARCH_OPTIONS))

    @api.get("/v1/memories/{memory_id}/", summary="mem0 get")
    async def get(memory_id: str, project: str = Depends(auth)) -> dict[str, Any]:
        return await projects.run(project, engine(project).get, memory_id)

    @api.put("/v1/memories/{memory_id}/", summary="mem0 update")
    async def update(memory_id: str, request: Request, project: str = Depends(auth)) -> dict[str, Any]:
        body = await json_body(request)
        text = body.get("text") if body.get("text") is not None else body.get("data")
        # mem0's client sends expiration_date: null to clear it, and leaves it out to keep it
        expiry = {"expiration_date": body["expiration_date"]} if "expiration_date" in body else None
        return await update_memory(projects, project, memory_id, text, body.get("metadata"), expiry)

    @api.delete("/v1/memories/{memory_id}/", summary="mem0 delete")
    async def delete(memory_id: str, project: str = Depends(auth)) -> dict[str, str]:
        return await projects.run(project, engine(project).delete, memory_id)

    @api.delete("/v1/memories/", summary="mem0 delete_all")
    async def delete_all(project: str = Depends(auth), user_id: str | None = None, agent_id: str | None = None,
                         run_id: str | None = None) -> dict[str, str]:
        return await projects.run_slow(project, engine(project).delete_all, user_id=user_id, agent_id=agent_id, run_id=run_id)

    @api.get("/v1/memories/{memory_id}/history/", summary="mem0 history")
    async def history(memory_id: str, project: str = Depends(auth)) -> list[dict[str, Any]]:
        return await projects.run(project, engine(project).history, memory_id)

    @api.get("/v1/entities/", summary="mem0 users: every user/agent/run that has memories")
    async def entities(project: str = Depends(auth)) -> dict[str, Any]:
        rows = await projects.run(project, engine(project).entities)
        results = [{"id": name, "name": name, "type": kind, "total_memories": count, "owner": project} for kind, name, count in rows]
        return {"count": len(results), "results": results}

    @api.delete("/v2/entities/{entity_type}/{name}/", summary="mem0 delete entity")
    async def delete_entity(entity_type: str, name: str, project: str = Depends(auth)) -> dict[str, str]:
        field = ENTITY_TYPES.get(entity_type)
        if field is None:
            raise APIError(400, f"entity type must be one of {sorted(ENTITY_TYPES)}", param="entity_type", code="invalid_entity_type")
        await projects.run_slow(project, engine(project).delete_users, **{field: name})
        return {"message": "Entity deleted successfully!"}

    @api.post("/v1/exports/", summary="mem0 create_memory_export: an export of the memories the filters select", status_code=201)
    async def create_export(request: Request, project: str = Depends(auth)) -> dict[str, Any]:
        body = await json_body(request)
        if body.get("schema") is None:
            raise APIError(400, "schema is required (mem0's export schema; memlane exports the memories themselves, see "
                                "docs/migrating-from-mem0.md)", param="schema", code="invalid_request")
        filters = _filters(body)
        resolve_scope(None, None, None, filters, required=None)  # a bad filter is a 400 now, not when it is fetched
        return {"id": export_id(filters), "message": "Memory export ready: fetch it with get_memory_export(memory_export_id=...)"}

    @api.post("/v1/exports/get/", summary="mem0 get_memory_export: the memories (with their history) of an export")
    async def get_export(request: Request, project: str = Depends(auth)) -> dict[str, Any]:
        body = await json_body(request)
        given = body.get("memory_export_id")
        filters = export_filters(given) if given is not None else _filters(body)
        records = await projects.run_slow(project, lambda: list(engine(project).export(filters=filters)))
        return {"id": given or export_id(filters), "status": "completed", "count": len(records), "results": records}

    return api
