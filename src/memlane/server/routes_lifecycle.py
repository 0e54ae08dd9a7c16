"""Batch edits, feedback and webhooks over HTTP: memlane's REST paths and the Mem0 Platform
paths ``mem0ai``'s ``MemoryClient`` calls (``batch_update``, ``batch_delete``, ``feedback``,
``create_webhook``, ``get_webhooks``, ``update_webhook``, ``delete_webhook``). One engine call
behind both; each project sees only its own webhooks (each project has its own store).

Included before the memory routes: ``PUT /v1/memories/batch`` must not be read as an update of
a memory whose id is ``batch``.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from memlane.engine.guidance import project_update
from memlane.server.errors import APIError
from memlane.server.limits import Limits
from memlane.server.routes_openai import json_body


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BatchBody(_Body):
    memories: list[Any] = Field(description="up to 1,000 items: {memory_id, text?, metadata?} to update, {memory_id} to delete")


class FeedbackBody(_Body):
    feedback: str | None = Field(None, description="POSITIVE, NEGATIVE or VERY_NEGATIVE; null withdraws a feedback")
    feedback_reason: str | None = None


class WebhookBody(_Body):
    url: str = Field(description="an http(s) URL; loopback and private addresses are refused unless server.webhooks.allow_private")
    name: str | None = None
    event_types: list[str] | None = Field(None, description="memory_add, memory_update, memory_delete (default: all)")
    is_active: bool = True


class WebhookChange(_Body):
    url: str | None = None
    name: str | None = None
    event_types: list[str] | None = None
    is_active: bool | None = None


class RequeueBody(_Body):
    ids: list[str] | None = Field(None, description="dead deliveries to send again; none given: every dead one")


def router(auth: Any, projects: Any, limits: Limits) -> APIRouter:
    api = APIRouter()

    def engine(project: str) -> Any:
        return projects.engine(project)

    def hook(found: dict[str, Any], project: str) -> dict[str, Any]:
        return {**found, "project": project}

    def same_project(project_id: str, project: str) -> None:
        if project_id != project:
            raise APIError(404, f"project {project_id!r} is not this key's project ({project!r}): a key reaches its own project's"
                                " webhooks only", param="project_id", code="project_not_found")

    # -- batch edits --------------------------------------------------------------------------------

    @api.put("/v1/memories/batch", tags=["memories"], summary="Update up to 1,000 memories, all or nothing (one transaction)")
    async def batch_update(body: BatchBody, project: str = Depends(auth)) -> dict[str, Any]:
        return await projects.run_slow(project, engine(project).batch_update, body.memories)

    @api.delete("/v1/memories/batch", tags=["memories"], summary="Delete up to 1,000 memories, all or nothing (one transaction)")
    async def batch_delete(body: BatchBody, project: str = Depends(auth)) -> dict[str, Any]:
        return await projects.run_slow(project, engine(project).batch_delete, body.memories)

    @api.put("/v1/batch/", tags=["mem0 compatibility"], summary="mem0 batch_update")
    async def mem0_batch_update(request: Request, project: str = Depends(auth)) -> dict[str, Any]:
        body = await json_body(request)
        return await projects.run_slow(project, engine(project).batch_update, body.get("memories"))

    @api.delete("/v1/batch/", tags=["mem0 compatibility"], summary="mem0 batch_delete")
    async def mem0_batch_delete(request: Request, project: str = Depends(auth)) -> dict[str, Any]:
        body = await json_body(request)
        return await projects.run_slow(project, engine(project).batch_delete, body.get("memories"))

    # -- project settings (custom instructions and categories: memlane.engine.guidance) -------------

    @api.get("/v1/project", tags=["memories"], summary="This project's custom_instructions and custom_categories")
    async def get_project(project: str = Depends(auth), fields: list[str] | None = Query(None)) -> dict[str, Any]:
        return await projects.run(project, engine(project).get_project, fields)

    @api.patch("/v1/project", tags=["memories"], summary="Set this project's custom_instructions and/or custom_categories")
    async def update_project(request: Request, project: str = Depends(auth)) -> dict[str, Any]:
        return await projects.run(project, engine(project).update_project, **project_update(await json_body(request)))

    # -- feedback -----------------------------------------------------------------------------------

    @api.post("/v1/memories/{memory_id}/feedback", tags=["memories"], summary="Give feedback on a memory (POSITIVE, NEGATIVE, VERY_NEGATIVE)")
    async def give_feedback(memory_id: str, body: FeedbackBody, project: str = Depends(auth)) -> dict[str, Any]:
        return await projects.run(project, engine(project).feedback, memory_id, body.feedback, body.feedback_reason)

    @api.get("/v1/memories/{memory_id}/feedback", tags=["memories"], summary="Every feedback given on a memory, oldest first")
    async def list_feedback(memory_id: str, project: str = Depends(auth)) -> list[dict[str, Any]]:
        return await projects.run(project, engine(project).get_feedback, memory_id)

    @api.post("/v1/feedback/", tags=["mem0 compatibility"], summary="mem0 feedback")
    async def mem0_feedback(request: Request, project: str = Depends(auth)) -> dict[str, Any]:
        body = await json_body(request)
        memory_id = body.get("memory_id")
        if not isinstance(memory_id, str) or not memory_id:
            raise APIError(400, "memory_id is required", param="memory_id", code="invalid_request")
        return await projects.run(project, engine(project).feedback, memory_id, body.get("feedback"), body.get("feedback_reason"))

    # -- webhooks: memlane's paths ---------------------------------------------------------------------

    @api.get("/v1/webhooks", tags=["webhooks"], summary="This project's webhooks, with their deliveries counted")
    async def list_webhooks(project: str = Depends(auth)) -> list[dict[str, Any]]:
        return [hook(h, project) for h in await projects.run(project, engine(project).get_webhooks)]

    @api.post("/v1/webhooks", tags=["webhooks"], summary="Create a webhook for memory add/update/delete (its secret signs each delivery)")
    async def create_webhook(body: WebhookBody, project: str = Depends(auth)) -> dict[str, Any]:
        made = await projects.run(project, engine(project).create_webhook, body.url, body.name, body.event_types, body.is_active)
        return hook(made, project)

    @api.get("/v1/webhooks/deliveries", tags=["webhooks"], summary="Deliveries of every webhook (or one), newest first, with their attempts")
    async def all_deliveries(project: str = Depends(auth), webhook_id: str | None = None, limit: int = Query(50, ge=1),
                             status: Literal["pending", "delivered", "dead"] | None = None) -> list[dict[str, Any]]:
        limits.check_limit(limit)
        return await projects.run(project, engine(project).webhook_deliveries, webhook_id, status=status, limit=limit)

    @api.get("/v1/webhooks/deliveries/{delivery_id}", tags=["webhooks"], summary="One delivery: its body and every attempt")
    async def one_delivery(delivery_id: str, project: str = Depends(auth)) -> dict[str, Any]:
        return await projects.run(project, engine(project).webhooks.delivery, delivery_id)

    @api.post("/v1/webhooks/deliveries/requeue", tags=["webhooks"], summary="Send dead deliveries again (all, or these ids)")
    async def requeue(body: RequeueBody, project: str = Depends(auth)) -> dict[str, int]:
        return {"requeued": await projects.run(project, engine(project).webhooks.requeue, body.ids)}

    @api.get("/v1/webhooks/{webhook_id}", tags=["webhooks"], summary="One webhook")
    async def get_webhook(webhook_id: str, project: str = Depends(auth)) -> dict[str, Any]:
        return hook(await projects.run(project, engine(project).webhooks.get, webhook_id), project)

    @api.put("/v1/webhooks/{webhook_id}", tags=["webhooks"], summary="Change a webhook's url, name, event_types or is_active")
    async def update_webhook(webhook_id: str, body: WebhookChange, project: str = Depends(auth)) -> dict[str, Any]:
        changed = await projects.run(project, engine(project).update_webhook, webhook_id, body.name, body.url, body.event_types,
                                     body.is_active)
        return hook(changed, project)

    @api.delete("/v1/webhooks/{webhook_id}", tags=["webhooks"], summary="Delete a webhook and its queued deliveries")
    async def delete_webhook(webhook_id: str, project: str = Depends(auth)) -> dict[str, str]:
        return await projects.run(project, engine(project).delete_webhook, webhook_id)

    @api.get("/v1/webhooks/{webhook_id}/deliveries", tags=["webhooks"], summary="A webhook's deliveries, newest first, with their attempts")
    async def deliveries(webhook_id: str, project: str = Depends(auth), limit: int = Query(50, ge=1),
                         status: Literal["pending", "delivered", "dead"] | None = None) -> list[dict[str, Any]]:
        limits.check_limit(limit)
        return await projects.run(project, engine(project).webhook_deliveries, webhook_id, status=status, limit=limit)

    # -- webhooks: mem0's paths --------------------------------------------------------------------------

    @api.get("/api/v1/webhooks/projects/{project_id}/", tags=["mem0 compatibility"], summary="mem0 get_webhooks")
    async def mem0_get_webhooks(project_id: str, project: str = Depends(auth)) -> list[dict[str, Any]]:
        same_project(project_id, project)
        return [hook(h, project) for h in await projects.run(project, engine(project).get_webhooks)]

    @api.post("/api/v1/webhooks/projects/{project_id}/", tags=["mem0 compatibility"], summary="mem0 create_webhook")
    async def mem0_create_webhook(project_id: str, request: Request, project: str = Depends(auth)) -> dict[str, Any]:
        body = await json_body(request)
        same_project(project_id, project)
        made = await projects.run(project, engine(project).create_webhook, body.get("url"), body.get("name"), body.get("event_types"),
                                  body.get("is_active", True))
        return hook(made, project)

    @api.put("/api/v1/webhooks/{webhook_id}/", tags=["mem0 compatibility"], summary="mem0 update_webhook")
    async def mem0_update_webhook(webhook_id: str, request: Request, project: str = Depends(auth)) -> dict[str, Any]:
        body = await json_body(request)
        changed = await projects.run(project, engine(project).update_webhook, webhook_id, body.get("name"), body.get("url"),
                                     body.get("event_types"), body.get("is_active"))
        return {"message": "Webhook updated successfully", **hook(changed, project)}

    @api.delete("/api/v1/webhooks/{webhook_id}/", tags=["mem0 compatibility"], summary="mem0 delete_webhook")
    async def mem0_delete_webhook(webhook_id: str, project: str = Depends(auth)) -> dict[str, str]:
        return await projects.run(project, engine(project).delete_webhook, webhook_id)

    return api
