"""Every endpoint answers errors in its protocol's envelope (OpenAI's; Anthropic's on
``/v1/messages``): walked over the app's own OpenAPI document, so a new route is covered the
day it is added."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from memlane.server.app import create_app
from memlane.server.errors import is_anthropic_path
from memlane.server.keys import KeyStore
from memlane.testing import ScriptedUpstream, openai_spec
from memlane.testing.live_server import LiveServer
from tests.scenarios import SPEC_PATH, client_config

OPEN = {"/healthz", "/readyz"}


def assert_envelope(r: httpx.Response, status: int) -> None:
    assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text[:300])
    body = r.json()
    if is_anthropic_path(r.request.url.path):
        assert body["type"] == "error" and set(body["error"]) == {"type", "message"} and body["error"]["message"], body
        return
    openai_spec.validate(body, "ErrorResponse", SPEC_PATH)
    assert set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["message"]


def test_every_route_answers_errors_in_the_envelope(tmp_path: Path, upstream: ScriptedUpstream) -> None:
    keys = KeyStore(tmp_path / "keys.db")
    key, _ = keys.create("acme")
    app = create_app(client_config(tmp_path / "s.db", upstream), keys=keys, drain_seconds=1)
    routes = [(method.upper(), path) for path, operations in app.openapi()["paths"].items() for method in operations]
    assert len(routes) > 20
    with LiveServer(app) as server, httpx.Client(base_url=server.url) as http:
        for method, path in routes:
            url = path.replace("{memory_id}", "no-such-memory").replace("{entity_type}", "user").replace("{name}", "nobody")
            if path in OPEN:
                continue
            assert_envelope(http.request(method, url), 401)  # no key
            authed: dict[str, Any] = {"headers": {"Authorization": f"Bearer {key}"}}
            if method in ("POST", "PUT"):
                assert_envelope(http.request(method, url, content=b"{not json", headers={**authed["headers"], "content-type": "application/json"}), 400)
                assert_envelope(http.request(method, url, content=b"{}", headers={**authed["headers"], "content-type": "text/plain"}), 415)
            if "{memory_id}" in path and method in ("GET", "DELETE"):
                assert_envelope(http.request(method, url, **authed), 404)
        assert_envelope(http.get("/v1/no-such-route", headers={"Authorization": f"Bearer {key}"}), 404)
        assert_envelope(http.patch("/v1/memories/search", headers={"Authorization": f"Bearer {key}"}), 405)
