"""The memory inspector: server-rendered pages at ``/ui`` in ``memlane serve`` (no build step,
nothing fetched at run time), answering "what does memlane know about alice, and where did it
come from" without curl.

Auth is the API's: without keys the server listens on loopback only and the pages need no
login; with keys they ask for one, once, and start a session (``server.keys``: a random token
in the keys file, never the key itself, for ``SESSION_SECONDS``; logging out or revoking the
key ends it), kept in an HttpOnly, SameSite=Strict cookie, so a page shows only that key's
project and no other site can make the browser send it. Every form (log in and log out too)
carries a double-submit CSRF token, so no other site can post one, not even to log a visitor
into the attacker's own project. Headers and cookie attributes: ``ui.security``.
"""

from __future__ import annotations

import json
import secrets
import time
from html import escape as html_escape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from memlane.errors import MemlaneError
from memlane.records import expiry_instant, utc_now
from memlane.server.errors import APIError
from memlane.server.keys import DEFAULT_PROJECT, SESSION_SECONDS
from memlane.server.metrics import Metrics
from memlane.server.metrics_history import MetricsHistory
from memlane.server.ui.metrics_page import metrics_context
from memlane.server.projects import describe_storage, in_thread
from memlane.server.ui import webhooks_page
from memlane.server.ui.security import CSRF_COOKIE, SESSION_COOKIE, SecurityHeaders, delete_cookie, read_cookie, set_cookie

__all__ = ["SecurityHeaders", "router"]

PAGE_SIZE = 50
#: a project-wide search reads this many scopes, the largest first (each is one engine search)
SEARCH_SCOPES = 200
_STYLESHEET = (Path(__file__).parent / "static" / "inspector.css").read_bytes()

_templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=select_autoescape(["html"]))


def _utc(when: Any) -> str:
    """A stored ISO timestamp or Unix seconds as "YYYY-MM-DD HH:MM:SS" (UTC)."""
    if isinstance(when, (int, float)):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when))
    return str(when or "")[:19].replace("T", " ")


def _expired(record: Any) -> bool:
    """Whether a memory's ``expiration_date`` has passed: the inspector lists expired memories
    too (a search or a chat does not), marked so."""
    instant = expiry_instant(record.get("expiration_date"))
    return instant is not None and instant <= utc_now()


_templates.filters["utc"] = _utc
_templates.tests["expired"] = _expired


def router(auth: Any, projects: Any, chat_route: str, *, metrics: Metrics, history: MetricsHistory) -> APIRouter:
    ui = APIRouter(prefix="/ui", include_in_schema=False)

    def project_of(request: Request) -> str | None:
        """The project this browser may see; None: it must log in first."""
        if not auth.required():
            return DEFAULT_PROJECT
        token = read_cookie(SESSION_COOKIE, request)
        info = auth.keys.session(token) if token else None
        return info.project if info else None

    def render(name: str, request: Request, project: str | None, code: int = 200, **context: Any) -> HTMLResponse:
        """A page; it sets this browser's CSRF cookie when it has none (the login page too: its
        form is checked like every other)."""
        token = read_cookie(CSRF_COOKIE, request) or secrets.token_urlsafe(24)
        html = _templates.get_template(name).render(project=project, logged_in=auth.required() and project is not None,
                                                    csrf=token, **context)
        response = HTMLResponse(html, status_code=code, headers={"Cache-Control": "no-store"})
        if not read_cookie(CSRF_COOKIE, request):
            set_cookie(response, CSRF_COOKIE, token, request)
        return response

    async def form_of(request: Request) -> dict[str, str] | Response:
        """A post's form (urlencoded, read here rather than through python-multipart); or the
        refusal of a post whose CSRF token does not match this browser's cookie."""
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        cookie = read_cookie(CSRF_COOKIE, request)
        if not (cookie and secrets.compare_digest(cookie.encode(), form.get("csrf", "").encode())):
            return HTMLResponse("the form expired or came from another site: reload the page and try again", status_code=403,
                                headers={"Cache-Control": "no-store"})
        return form

    async def posted(request: Request) -> tuple[str, dict[str, str]] | Response:
        """The project and the form of a state-changing post; or the answer refusing it (not
        logged in, or a CSRF token that does not match)."""
        project = project_of(request)
        if project is None:
            return to_login()
        form = await form_of(request)
        if isinstance(form, Response):
            return form
        return project, form

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
        learner = await in_thread(projects.client(project).outbox_status)
        guidance = await in_thread(memory.get_project)
        return render("overview.html", request, project, status=status, scopes=scopes, chat_route=chat_route, learner=learner,
                      guidance=guidance,
                    store=f"{memory.config.vector_store.provider}: {describe_storage(projects.config, project)}")

    @ui.get("/search", response_class=HTMLResponse)
    async def project_search(request: Request, q: str = "") -> Response:
        """The whole project's memories for a query, best first: each scope (the largest
        ``SEARCH_SCOPES``) searched with the engine's own search, merged by score."""
        project = project_of(request)
        if project is None:
            return to_login()
        memory = projects.engine(project)
        rows: list[dict[str, Any]] = []
        scopes: list[tuple[str, str, int]] = []
        if q.strip():
            scopes = sorted(await in_thread(memory.entities), key=lambda e: (-e[2], e[0], e[1]))[:SEARCH_SCOPES]

            def search_all() -> list[dict[str, Any]]:
                found = [hit for kind, name, _ in scopes
                         for hit in memory.search(q, **{f"{kind}_id": name}, limit=PAGE_SIZE, show_expired=True)["results"]]
                unique = {hit["id"]: hit for hit in found}  # a memory of user and agent is in both scopes
                return sorted(unique.values(), key=lambda hit: -hit["score"])[:PAGE_SIZE]

            try:
                rows = await in_thread(search_all)
            except MemlaneError as exc:
                return render("search.html", request, project, code=exc.http_status, query=q, rows=[], scopes=scopes,
                              limit=SEARCH_SCOPES, error=exc.message)
        return render("search.html", request, project, query=q, rows=rows, scopes=scopes, limit=SEARCH_SCOPES, error=None)

    @ui.get("/memories", response_class=HTMLResponse)
    async def memories(request: Request, user_id: str = "", agent_id: str = "", run_id: str = "", q: str = "",
                       filters: str = "", page: int = Query(1, ge=1, le=10_000),
                       sort: str = Query("newest", pattern="^(newest|oldest)$")) -> Response:
        project = project_of(request)
        if project is None:
            return to_login()
        page_number = page
        scope = {k: v for k, v in (("user_id", user_id), ("agent_id", agent_id), ("run_id", run_id)) if v}
        context: dict[str, Any] = {"scope": scope, "query": q, "filters": filters, "page": page_number, "rows": None,
                                   "more": False, "error": None, "sort": sort}

        def page_url(number: int) -> str:
            return "/ui/memories?" + urlencode({**scope, "q": q, "filters": filters, "sort": sort, "page": number})

        context["page_url"] = page_url
        if scope:
            memory = projects.engine(project)
            try:
                parsed = json.loads(filters) if filters.strip() else None
                if q.strip():
                    found = await in_thread(memory.search, q, **scope, filters=parsed, limit=PAGE_SIZE, show_expired=True)
                    context["rows"] = found["results"]
                else:
                    # one page's rows and a count, however deep the page (not every row before it)
                    found = await in_thread(memory.get_page, **scope, filters=parsed, page=page_number, page_size=PAGE_SIZE,
                                            oldest_first=sort == "oldest", show_expired=True)
                    context["rows"] = found["results"]
                    context["more"] = page_number * PAGE_SIZE < found["count"]
            except json.JSONDecodeError as exc:
                context["error"] = f"filters is not valid JSON: {exc.msg}"
            except MemlaneError as exc:
                context["error"] = exc.message
        return render("memories.html", request, project, code=400 if context["error"] else 200, **context)

    def learnt_from(project: str, memory_id: str) -> dict[tuple[str, str], dict[str, Any]]:
        """The recent chats (recall log) whose exchange caused a change of this memory, by
        (event, text): where known, a history entry shows the chat it was learnt from."""
        return {(change["event"], change["memory"]): chat
                for chat in reversed(projects.client(project).recent_recalls(limit=100_000))
                for change in chat.get("learned") or [] if change.get("id") == memory_id}

    @ui.get("/memories/{memory_id}", response_class=HTMLResponse)
    async def one(request: Request, memory_id: str) -> Response:
        project = project_of(request)
        if project is None:
            return to_login()
        memory = projects.engine(project)
        try:
            record = await in_thread(memory.get, memory_id)
            history = await in_thread(memory.history, memory_id)
            feedback = await in_thread(memory.get_feedback, memory_id)
        except MemlaneError as exc:
            return render("memories.html", request, project, code=exc.http_status, scope={}, query="", filters="", page=1, sort="newest",
                        rows=None, more=False, error=exc.message, page_url=lambda n: "/ui/memories")
        return render("memory.html", request, project, memory=record, history=history, sources=learnt_from(project, memory_id),
                      confirm_delete=request.query_params.get("confirm") == "delete", feedback=feedback)

    @ui.post("/memories/{memory_id}/edit")
    async def edit(request: Request, memory_id: str) -> Response:
        """A new text, through the engine, so history records the UPDATE."""
        allowed = await posted(request)
        if isinstance(allowed, Response):
            return allowed
        project, form = allowed
        try:
            await in_thread(projects.engine(project).update, memory_id, form.get("text", ""))
        except MemlaneError as exc:
            return HTMLResponse(f"not changed: {html_escape(exc.message)}", status_code=exc.http_status)
        return RedirectResponse(f"/ui/memories/{quote(memory_id)}", status_code=303)

    @ui.post("/memories/{memory_id}/delete")
    async def delete(request: Request, memory_id: str) -> Response:
        allowed = await posted(request)
        if isinstance(allowed, Response):
            return allowed
        memory = projects.engine(allowed[0])
        try:
            record = await in_thread(memory.get, memory_id)
            await in_thread(memory.delete, memory_id)
        except MemlaneError as exc:
            return HTMLResponse(f"not deleted: {html_escape(exc.message)}", status_code=exc.http_status)
        scope = {k: record[k] for k in ("user_id", "agent_id", "run_id") if record.get(k)}
        return RedirectResponse("/ui/memories?" + urlencode(scope), status_code=303)

    @ui.get("/chats", response_class=HTMLResponse)
    async def chats(request: Request, user_id: str = "", agent_id: str = "", run_id: str = "") -> Response:
        """The recent chats, or one scope's (linked from its memories)."""
        project = project_of(request)
        if project is None:
            return to_login()
        scope = {k: v for k, v in (("user_id", user_id), ("agent_id", agent_id), ("run_id", run_id)) if v}
        recent = projects.client(project).recent_recalls(scope, limit=200)
        return render("chats.html", request, project, chats=recent, scope=scope, size=projects.config.server.recall_log)

    @ui.get("/metrics", response_class=HTMLResponse)
    async def metrics_page(request: Request) -> Response:
        """Requests, recall latency, hit rate, upstream latency and learning over the last hour."""
        project = project_of(request)
        if project is None:
            return to_login()
        projects.client(project)  # a project nobody has called yet still shows (empty) charts
        totals = next(iter(metrics.readings(await in_thread(projects.snapshot, project))), None)
        return render("metrics.html", request, project, interval=projects.config.server.metrics_interval,
                      **metrics_context(totals, history.points(project)))

    webhooks_page.install(ui, projects, project_of, render, to_login)

    @ui.get("/inspector.css", include_in_schema=False)
    async def stylesheet() -> Response:
        return Response(_STYLESHEET, media_type="text/css", headers={"Cache-Control": "max-age=3600"})

    @ui.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> Response:
        return render("login.html", request, None, error=None)

    @ui.post("/login")
    async def login(request: Request) -> Response:
        """A key, checked, starts a session; the cookie holds the session's token, not the key."""
        form = await form_of(request)
        if isinstance(form, Response):
            return form
        if not auth.required():
            return RedirectResponse("/ui", status_code=303)
        key = form.get("key", "").strip()
        try:
            auth.project_of(f"Bearer {key}")  # its refusal says why (revoked, none active, ...)
            started = await in_thread(auth.keys.start_session, key)
            if started is None:  # revoked between the two reads
                raise APIError(401, "invalid or revoked API key", code="invalid_api_key")
        except APIError as exc:
            return render("login.html", request, None, code=401, error=exc.message)
        response = RedirectResponse("/ui", status_code=303)
        set_cookie(response, SESSION_COOKIE, started[0], request, max_age=SESSION_SECONDS)
        return response

    @ui.post("/logout")
    async def logout(request: Request) -> Response:
        """Ends the session in the keys file (a copied cookie stops working too)."""
        form = await form_of(request)
        if isinstance(form, Response):
            return form
        token = read_cookie(SESSION_COOKIE, request)
        if token:
            await in_thread(auth.keys.end_session, token)
        response = RedirectResponse("/ui/login", status_code=303)
        delete_cookie(response, SESSION_COOKIE, request)
        return response

    return ui
