"""schemathesis against every route of the OpenAPI description the server publishes: whatever
it generates (valid bodies, edge values, the wrong types), the answer is never a 5xx.
The chat route talks to the scripted upstream; the embedder is the scripted one (fast)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from memlane.server.app import create_app
from memlane.server.keys import KeyStore
from memlane.testing import ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import client_config, restaurant_llm


def _published_schema() -> dict[str, Any]:
    """The schema as served (building the app reads no store; nothing is started)."""
    home = Path(tempfile.mkdtemp(prefix="memlane-schema-"))
    app = create_app({"vector_store": {"provider": "sqlite", "config": {"path": str(home / "s.db")}}}, keys=KeyStore(home / "keys.db"))
    return app.openapi()


schema = schemathesis.openapi.from_dict(_published_schema())


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    home = tmp_path_factory.mktemp("schema-fuzz")
    with ScriptedUpstream() as upstream:
        upstream.handler = restaurant_llm
        embedder = {"provider": "openai", "config": {"base_url": upstream.url, "api_key": "k", "model": "e", "max_retries": 0}}
        config = client_config(home / "fuzz.db", upstream, embedder=embedder)
        config["upstream"] = {**config["upstream"], "anthropic_base_url": upstream.anthropic_url, "anthropic_api_key": "k"}
        app = create_app(config, keys=KeyStore(home / "keys.db"), drain_seconds=1)
        with LiveServer(app) as server:
            yield server


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_5xx(case: Any, live: LiveServer) -> None:
    response = case.call(base_url=live.url, timeout=30)
    assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.status_code, response.text[:300])
