"""The inspector's webhook pages: the project's webhooks with their deliveries counted, the
latest deliveries and each one's attempts (status code or error, time taken), so "did the CRM
get alice's new address, and if not, why" is answered without the CLI."""

from __future__ import annotations

from typing import Any, Callable

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from memlane.errors import MemlaneError
from memlane.server.projects import in_thread

#: deliveries the page lists
SHOWN_DELIVERIES = 100


def install(ui: APIRouter, projects: Any, project_of: Callable[[Request], str | None], render: Callable[..., HTMLResponse],
            to_login: Callable[[], Response]) -> None:
    """Add ``/ui/webhooks`` and ``/ui/webhooks/deliveries/{id}`` to the inspector's router."""

    @ui.get("/webhooks", response_class=HTMLResponse)
    async def webhooks(request: Request, webhook_id: str = "", status: str = Query("", pattern="^(|pending|delivered|dead)$")) -> Response:
        project = project_of(request)
        if project is None:
            return to_login()
        memory = projects.engine(project)
        hooks = await in_thread(memory.get_webhooks)
        try:
            rows = await in_thread(memory.webhook_deliveries, webhook_id or None, status=status or None, limit=SHOWN_DELIVERIES)
        except MemlaneError as exc:
            return render("webhooks.html", request, project, code=exc.http_status, hooks=hooks, deliveries=[], error=exc.message,
                          webhook_id=webhook_id, status=status)
        return render("webhooks.html", request, project, hooks=hooks, deliveries=rows, error=None, webhook_id=webhook_id, status=status)

    @ui.get("/webhooks/deliveries/{delivery_id}", response_class=HTMLResponse)
    async def delivery(request: Request, delivery_id: str) -> Response:
        project = project_of(request)
        if project is None:
            return to_login()
        try:
            found = await in_thread(projects.engine(project).webhooks.delivery, delivery_id)
        except MemlaneError as exc:
            return render("webhooks.html", request, project, code=exc.http_status, hooks=[], deliveries=[], error=exc.message,
                          webhook_id="", status="")
        return render("delivery.html", request, project, delivery=found)
