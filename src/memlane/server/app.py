"""The FastAPI application: ``create_app(config)`` wires auth, limits, metrics, errors and routes."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Mapping

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from memlane import __version__
from memlane.config import MemlaneConfig, load_config
from memlane.openai_compat import NO_CHAT_ENDPOINT, chat_endpoint
from memlane.proxy.protocols.messages import NO_ANTHROPIC_ENDPOINT, anthropic_endpoint
from memlane.server import errors, routes_anthropic, routes_lifecycle, routes_mem0, routes_memories, routes_openai, ui
from memlane.server.auth import Auth
from memlane.server.browser_guard import BrowserGuard
from memlane.server.cpu import one_blas_thread, settle_heap
from memlane.server.keys import DEFAULT_PROJECT, KeyStore
from memlane.server.lanes import ProjectBusy
from memlane.server.limits import RequestGuard, Limits
from memlane.server.openapi import describe, install_docs
from memlane.server.metrics import Metrics, Observe
from memlane.server.metrics_history import MetricsHistory
from memlane.server.projects import Projects, in_thread
from memlane.server.webhook_deliverer import WebhookDeliverer

#: seconds /readyz waits for the default store before it answers 503
READY_SECONDS = 5.0


def create_app(
    config: MemlaneConfig | Mapping[str, Any] | str | None = None,
    *,
    keys: KeyStore | None = None,
    limits: Limits | None = None,
    drain_seconds: float | None = None,
    require_keys: bool = False,
    bind_host: str | None = None,
    learner_dir: str | Path | None = None,
    own_process: bool = False,
) -> FastAPI:
    """The server for ``config``; its ``server`` section gives the keys file, the drain time and
    the request limits (the arguments override them, for tests). ``require_keys``: every request
    needs an active key even before one exists (``memlane serve`` sets it for any non-loopback
    bind); keys are also required once any was created. ``bind_host``: the address ``memlane
    serve`` listens on; a name there is a ``Host`` the server answers to. ``learner_dir``:
    learning is done by learner processes that report there (``memlane serve`` starts them,
    server/learner_supervisor.py); None: each project learns in this process's threads.
    ``own_process``: the app is all its process runs (``memlane serve`` and its workers), so its
    start-up settles the heap (server/cpu.py); not for an app embedded in someone's process."""
    cfg = load_config(config)
    keys = keys or KeyStore(cfg.server.keys_file())
    limits = limits or Limits.from_config(cfg.server)
    drain = cfg.server.drain_seconds if drain_seconds is None else drain_seconds
    metrics = Metrics()
    projects = Projects(cfg, on_client=metrics.watch, learner_dir=Path(learner_dir) if learner_dir else None)
    auth = Auth(keys, require_keys=require_keys, on_request=metrics.project_request)
    history = MetricsHistory(lambda: metrics.readings(projects.snapshot()), size=cfg.server.metrics_points)
    #: /readyz's own threads: it never waits behind any project's work
    probes = ThreadPoolExecutor(2, thread_name_prefix="memlane-readyz")
    #: sends the projects' webhook deliveries in the background (server/webhook_deliverer.py)
    deliverer = WebhookDeliverer(projects, cfg.server.webhooks, known_projects=lambda: [
        DEFAULT_PROJECT, *sorted({k.project for k in keys.list() if k.revoked_at is None} - {DEFAULT_PROJECT})])

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        one_blas_thread()
        # open the default store now (its learner resumes the outbox) and load the embedder
        await in_thread(projects.engine(DEFAULT_PROJECT).warm_up)
        if own_process:
            settle_heap()  # what start-up made is never walked by a collection again (server/cpu.py)
        sampler = asyncio.create_task(history.run(cfg.server.metrics_interval)) if cfg.server.metrics_interval else None
        deliverer.start()
        yield
        if sampler is not None:
            sampler.cancel()
        await in_thread(deliverer.stop)  # attempts in flight finish; their leases go back to the queue
        await projects.drain_and_close(drain)  # graceful shutdown drains the outbox
        probes.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="memlane", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="OpenAI-compatible chat with long-term memory, and the memory REST API.")
    install_docs(app)
    app.state.projects, app.state.keys, app.state.metrics, app.state.history = projects, keys, metrics, history
    app.state.webhooks = deliverer
    errors.install(app, metrics)

    @app.exception_handler(ProjectBusy)
    async def project_busy(_: Any, exc: ProjectBusy) -> Response:
        metrics.project_busy(exc.project, exc.lane)
        return errors.envelope(429, exc.message, code=exc.code, headers={"Retry-After": str(exc.retry_after)})
    app.openapi = lambda: describe(app)  # type: ignore[method-assign]

    app.add_middleware(Observe, metrics=metrics)
    app.add_middleware(RequestGuard, max_bytes=limits.max_body_bytes, max_depth=limits.max_json_depth)
    app.add_middleware(BrowserGuard, allowed_hosts=[*cfg.server.allowed_hosts, *([bind_host] if bind_host else [])],
                       cors_origins=cfg.server.cors_origins)  # outermost: refused before a body is read
    app.add_middleware(ui.SecurityHeaders)  # on every /ui answer, the guard's refusals included
    app.include_router(routes_openai.router(auth, projects, limits))
    app.include_router(routes_lifecycle.router(auth, projects, limits))  # before /v1/memories/{id}: /v1/memories/batch
    app.include_router(routes_memories.router(auth, projects, limits))
    app.include_router(routes_memories.exchanges_router(auth, projects, limits))
    app.include_router(routes_memories.users_router(auth, projects))
    app.include_router(routes_mem0.router(auth, projects, limits))
    routes_anthropic.install(app, auth, projects, limits)  # with its error envelope, the outermost middleware
    endpoint = chat_endpoint(cfg.upstream, cfg.llm.config)
    app.include_router(ui.router(auth, projects, (endpoint[0] or "https://api.openai.com/v1") if endpoint else NO_CHAT_ENDPOINT,
                                 metrics=metrics, history=history))

    @app.get("/healthz", tags=["operations"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="The default store answers; says whether chats (and Anthropic Messages) have a model server")
    async def readyz() -> Response:
        try:
            ping = asyncio.get_running_loop().run_in_executor(probes, projects.engine(DEFAULT_PROJECT).ping)
            await asyncio.wait_for(ping, READY_SECONDS)
        except asyncio.TimeoutError:
            return errors.envelope(503, f"store not ready: it did not answer within {READY_SECONDS:g} s", code="not_ready")
        except Exception as exc:  # noqa: BLE001
            return errors.envelope(503, f"store not ready: {exc}", code="not_ready")
        chat = "ready" if chat_endpoint(cfg.upstream, cfg.llm.config) else NO_CHAT_ENDPOINT
        messages = "ready" if anthropic_endpoint(cfg.upstream) else NO_ANTHROPIC_ENDPOINT
        return JSONResponse({"status": "ready", "memory": "ready", "chat": chat, "messages": messages})

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse,
             summary="Prometheus metrics (once keys are required: needs a key, shows only its project)")
    async def prometheus(project: str = Depends(auth)) -> PlainTextResponse:
        only = project if auth.required() else None
        text = metrics.render(projects.snapshot(only), only=only)
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    @app.get("/v1/whoami", tags=["operations"], summary="The project of the calling key")
    async def whoami(project: str = Depends(auth)) -> dict[str, str]:
        return {"project": project}

    return app


def app_from_environment() -> FastAPI:
    """The app of one ``memlane serve --workers N`` process: the config from ``MEMLANE_CONFIG``,
    keys required when the parent bound beyond loopback (``MEMLANE_REQUIRE_KEYS``), the address
    it bound (``MEMLANE_BIND_HOST``), the learner processes' folder (``MEMLANE_LEARNER_DIR``)."""
    import os

    from memlane.server.learner_files import DIR_ENV

    return create_app(None, require_keys=os.environ.get("MEMLANE_REQUIRE_KEYS") == "1",
                      bind_host=os.environ.get("MEMLANE_BIND_HOST") or None, learner_dir=os.environ.get(DIR_ENV) or None,
                      own_process=True)
