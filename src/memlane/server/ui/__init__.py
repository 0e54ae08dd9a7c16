"""The memory inspector: server-rendered pages at ``/ui`` in ``memlane serve`` (no build step,
nothing fetched at run time), answering "what does memlane know about alice, and where did it
come from" without curl.

Auth is the API's: without keys the server listens on loopback only and the pages need no
login; with keys they ask for one and keep it in an HttpOnly, SameSite=Strict cookie scoped to
``/ui``, so a page shows only that key's project and no other site can make the browser send it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from memlane.errors import MemlaneError
from memlane.server.errors import APIError
from memlane.server.keys import DEFAULT_PROJECT
from memlane.server.projects import describe_storage, in_thread

COOKIE = "memlane_key"
PAGE_SIZE = 50

_templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"]))


def router(auth: Any, projects: Any, chat_route: str) -> APIRouter:
    ui = APIRouter(prefix="/ui", include_in_schema=False)

    def project_of(request: Request) -> str | None:
        """The project this browser may see; None: it must log in first."""
        if not auth.required():
            return DEFAULT_PROJECT
        key = request.cookies.get(COOKIE, "")
        if not key:
            return None
        try:
            return str(auth.project_of(f"Bearer {key}"))
        except APIError:
            return None

    def render(name: str, request: Request, project: str | None, code: int = 200, **context: Any) -> HTMLResponse:
        html = _templates.get_template(name).render(project=project, logged_in=auth.required() and project is not None, **context)
        return HTMLResponse(html, status_code=code, headers={"Cache-Control": "no-store"})

    def to_login() -> RedirectResponse:
        return RedirectResponse("/ui/login", status_code=303)

    @ui.get("", response_class=HTMLResponse)
    async def overview(request: Request) -> Response:
        project = project_of(request)
        if project is None:
            return to_login()
        memory = projects.engine(project)
        status = await in_thread(memory.status)
        scopes = sorted(await in_thread(memory.entities), key=lambda e: (-e[2], e[0], e[1]))[:200]
        return render("overview.html", request, project, status=status, scopes=scopes, chat_route=chat_route,
                    store=f"{memory.config.vector_store.provider}: {describe_storage(projects.config, project)}")

    @ui.get("/memories", response_class=HTMLResponse)
    async def memories(request: Request, user_id: str = "", agent_id: str = "", run_id: str = "", q: str = "",
                       filters: str = "", page: int = Query(1, ge=1, le=10_000)) -> Response:
        project = project_of(request)
        if project is None:
            return to_login()
        page_number = page
        scope = {k: v for k, v in (("user_id", user_id), ("agent_id", agent_id), ("run_id", run_id)) if v}
        context: dict[str, Any] = {"scope": scope, "query": q, "filters": filters, "page": page_number, "rows": None,
                                   "more": False, "error": None}

        def page_url(number: int) -> str:
            return "/ui/memories?" + urlencode({**scope, "q": q, "filters": filters, "page": number})

        context["page_url"] = page_url
        if scope:
            memory = projects.engine(project)
            try:
                parsed = json.loads(filters) if filters.strip() else None
                if q.strip():
                    found = await in_thread(memory.search, q, **scope, filters=parsed, limit=PAGE_SIZE)
                    context["rows"] = found["results"]
                else:
                    found = await in_thread(memory.get_all, **scope, filters=parsed, limit=page_number * PAGE_SIZE + 1)
                    rows = found["results"]
                    context["rows"] = rows[(page_number - 1) * PAGE_SIZE : page_number * PAGE_SIZE]
                    context["more"] = len(rows) > page_number * PAGE_SIZE
            except json.JSONDecodeError as exc:
                context["error"] = f"filters is not valid JSON: {exc.msg}"
            except MemlaneError as exc:
                context["error"] = exc.message
        return render("memories.html", request, project, code=400 if context["error"] else 200, **context)

    @ui.get("/memories/{memory_id}", response_class=HTMLResponse)
    async def one(request: Request, memory_id: str) -> Response:
        project = project_of(request)
        if project is None:
            return to_login()
        memory = projects.engine(project)
        try:
            record = await in_thread(memory.get, memory_id)
            history = await in_thread(memory.history, memory_id)
        except MemlaneError as exc:
            return render("memories.html", request, project, code=exc.http_status, scope={}, query="", filters="", page=1,
                        rows=None, more=False, error=exc.message, page_url=lambda n: "/ui/memories")
        return render("memory.html", request, project, memory=record, history=history)

    @ui.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> Response:
        return render("login.html", request, None, error=None)

    @ui.post("/login")
    async def login(request: Request) -> Response:
        # the form is urlencoded: read here rather than through python-multipart
        key = parse_qs((await request.body()).decode("utf-8", "replace")).get("key", [""])[0]
        try:
            project = auth.project_of(f"Bearer {key.strip()}") if auth.required() else DEFAULT_PROJECT
        except APIError as exc:
            return render("login.html", request, None, code=401, error=exc.message)
        response = RedirectResponse("/ui", status_code=303)
        if auth.required():
            response.set_cookie(COOKIE, key.strip(), httponly=True, samesite="strict", path="/ui",
                                secure=request.url.scheme == "https", max_age=7 * 24 * 3600)
        return response if project else to_login()

    @ui.post("/logout")
    async def logout() -> Response:
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie(COOKIE, path="/ui")
        return response

    return ui
