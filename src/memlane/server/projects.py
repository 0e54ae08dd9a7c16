"""One engine per project, so a project's key can only ever reach that project's memories.

Each project gets its own storage beside the configured one (the ``default`` project is the
configured store itself, the one the CLI uses): isolation by construction. SQLite: a file
beside the configured file; PostgreSQL: a schema; Qdrant: a collection (and its records in
their own file or schema).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
from pathlib import Path
from typing import Any, Callable

from memlane.config import MemlaneConfig, default_db_path
from memlane.engine.memory import AsyncMemory, Memory
from memlane.errors import ConfigError
from memlane.proxy.client import AsyncMemlane
from memlane.server.keys import DEFAULT_PROJECT, check_project
from memlane.server.lanes import QUICK, SLOW, ProjectLanes


def _tag(project: str) -> str:
    """A SQL- and Qdrant-safe name part; the hash keeps ``Acme``, ``acme`` and ``a-cme`` apart."""
    return re.sub(r"[^a-z0-9_]", "_", project.lower())[:20] + "_" + hashlib.sha1(project.encode()).hexdigest()[:8]


#: the name part a project's own files and tables carry (the learner processes' files too)
project_tag = _tag


def _beside(path: str | None, project: str) -> str:
    base = Path(path or default_db_path()).expanduser()
    return str(base.with_name(f"{base.stem}.{project}{base.suffix or '.db'}"))


def _schema(name: str | None, default: str, project: str) -> str:
    tag = _tag(project)
    return f"{(name or default)[:62 - len(tag)]}_{tag}"


def project_config(config: MemlaneConfig, project: str) -> MemlaneConfig:
    if project == DEFAULT_PROJECT:
        return config
    check_project(project)
    data = config.model_dump()
    provider, options = data["vector_store"]["provider"], data["vector_store"]["config"]
    if provider == "sqlite":
        options["path"] = _beside(options.get("path"), project)
    elif provider == "pgvector":
        options["schema_name"] = _schema(options.get("schema_name"), "memlane", project)
    elif provider == "qdrant":
        collection = options.get("collection_name") or "memlane"
        options["collection_name"] = f"{collection}_{_tag(project)}"
        records = options.get("records") or {}
        records_options = records.setdefault("config", {}) if records else {}
        if records.get("provider") in ("postgres", "pgvector"):
            records_options["schema_name"] = _schema(records_options.get("schema_name"), "qdrant_" + collection.lower(), project)
        elif records:
            records_options["path"] = _beside(records_options.get("path"), project)
        elif options.get("records_path") or options.get("path"):
            # local mode keeps its records in the Qdrant folder by default
            options["records_path"] = _beside(options.get("records_path") or str(Path(options["path"]) / "records.db"), project)
    else:
        raise ConfigError(f"projects other than {DEFAULT_PROJECT!r} are not supported on the {provider!r} store", param="vector_store.provider")
    return MemlaneConfig.model_validate(data)


def describe_storage(config: MemlaneConfig, project: str) -> str:
    """Where a project's memories live, in words (for ``memlane keys create``)."""
    options = project_config(config, project).vector_store
    settings = options.config
    if options.provider == "sqlite":
        return str(Path(settings.get("path") or default_db_path()).expanduser())
    if options.provider == "pgvector":
        return f"PostgreSQL schema {settings.get('schema_name', 'memlane')}"
    return f"Qdrant collection {settings.get('collection_name', 'memlane')}"


class Projects:
    def __init__(self, config: MemlaneConfig, *, on_client: Callable[[str, AsyncMemlane], None] | None = None,
                 learner_dir: Path | None = None) -> None:
        """``learner_dir``: learning is done by learner processes reporting in that folder
        (``memlane serve``, ``server.learner: process``); None: each project's client learns
        in its own threads."""
        self.config = config
        self.learner_dir = learner_dir
        self._clients: dict[str, AsyncMemlane] = {}
        #: each project's learner (its own threads' ``Learner``, or the view of the learner processes)
        self._learners: dict[str, Any] = {}
        self._lock = threading.Lock()
        #: told about each project's client when it is made (the metrics listen to its timings)
        self._on_client = on_client
        #: each project's own threads and queues for its memory calls (server/lanes.py)
        self.lanes = ProjectLanes(threads=config.server.project_threads, slow_threads=config.server.project_slow_threads,
                                  queue=config.server.project_queue)

    def client(self, project: str) -> AsyncMemlane:
        with self._lock:
            if project not in self._clients:
                config = project_config(self.config, project)
                # the callers' own SDKs retry what fails here: retry once end to end, not 3 x 3
                upstream = config.upstream.model_copy(update={"max_retries": config.upstream.retries(serving=True)})
                self._clients[project] = self._new_client(project, config.model_copy(update={"upstream": upstream}))
                if self._on_client is not None:
                    self._on_client(project, self._clients[project])
            return self._clients[project]

    def _new_client(self, project: str, config: MemlaneConfig) -> AsyncMemlane:
        from memlane.proxy.embedded import EmbeddedBackend
        from memlane.server.learner_view import ProcessLearnerView

        directory, processes = self.learner_dir, self.config.server.learner_processes
        learner = None if directory is None else (lambda memory: ProcessLearnerView(memory, directory, project, processes))
        backend = EmbeddedBackend(config, None, asynchronous=True, learner=learner)
        self._learners[project] = backend.learner
        return AsyncMemlane.on_backend(backend)

    def hurry(self, project: str) -> None:
        """Someone waits for the project's queued exchanges (``GET /v1/exchanges/{id}?wait=``):
        its learner learns short batches now rather than holding them back for more."""
        self.client(project)
        self._learners[project].hurry()

    def engine(self, project: str) -> Memory:
        """The project's engine, for the memory routes (they call it in worker threads)."""
        memory: AsyncMemory = self.client(project).memory
        return memory.sync

    async def run(self, project: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in the project's quick lane: reads and single writes. Raises
        ``ProjectBusy`` (429) when the project already has its fill running and queued."""
        return await self.lanes.lane(project, QUICK).run(fn, *args, **kwargs)

    async def run_slow(self, project: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """The same in the project's slow lane: calls that wait on the memory LLM (``infer``
        adds) or walk a whole scope (import, export, scope deletes), so they never hold the
        threads quick calls need."""
        return await self.lanes.lane(project, SLOW).run(fn, *args, **kwargs)

    def loaded(self) -> list[tuple[str, AsyncMemlane]]:
        with self._lock:
            return list(self._clients.items())

    async def drain_and_close(self, timeout: float) -> None:
        """Graceful shutdown: give the learners ``timeout`` to empty the outboxes, then close."""
        self.lanes.close()  # nothing queued starts now; what runs finishes
        for _, client in self.loaded():
            await client.flush(timeout=timeout)
            await client.close()

    def snapshot(self, only: str | None = None) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        """(name, client stats, outbox status) of each loaded project, or of ``only`` (one
        project's page or scrape reads no other project's outbox)."""
        rows = []
        for name, client in self.loaded():
            if only is not None and name != only:
                continue
            stats = {**vars(client.stats), **client.memory.sync.rerank_stats()}  # the engine's reranker counts too
            try:
                outbox = client.outbox_status()
            except Exception:  # noqa: BLE001 - metrics must render even if a store is down
                outbox = {}
            rows.append((name, stats, outbox))
        return rows


async def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """In the default thread pool: for work that belongs to no project (start-up, the
    inspector). A project's memory calls go through ``Projects.run`` / ``run_slow``."""
    return await asyncio.to_thread(fn, *args, **kwargs)
