"""What ``/metrics`` exposes stays bounded whatever clients send, and a key's scrape is its
project's own: every series it shows carries that project's label, none another's."""

from __future__ import annotations

import random
import socket
import string
from pathlib import Path
from typing import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from memlane.server.keys import KeyStore
from memlane.testing import Reply, ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import restaurant_llm


def raw_request(port: int, method: str, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def test_garbage_methods_and_paths_add_no_label_values(server: LiveServer) -> None:
    before = httpx.get(server.url + "/metrics").text
    rng = random.Random(7)
    for number in range(300):
        method = "".join(rng.choices(string.ascii_uppercase, k=8000))
        path = "/v1/memories" if number % 2 else f"/no/such/{number}"
        assert raw_request(server.port, method, path).startswith(b"HTTP/1.1 4")
    after = httpx.get(server.url + "/metrics").text
    assert len(after) < len(before) + 20_000, f"the scrape grew from {len(before)} to {len(after)} bytes"
    requests = [labels for name, labels, _ in samples(after) if name == "memlane_requests_total"]
    assert {"method": "other", "route": "unmatched", "status": "404", "project": ""} in requests
    assert all(labels["method"] in ("GET", "other") for labels in requests), requests
    assert max(len(line) for line in after.splitlines()) < 300


def test_each_keys_scrape_shows_its_own_projects_series_and_no_other(make_server: Callable[..., LiveServer], tmp_path: Path,
                                                                    upstream: ScriptedUpstream) -> None:
    keys = KeyStore(tmp_path / "keys.db")
    acme = {"Authorization": f"Bearer {keys.create('acme')[0]}"}
    globex = {"Authorization": f"Bearer {keys.create('globex')[0]}"}
    server = make_server(keys=keys)
    upstream.handler = restaurant_llm
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "user_id": "bob"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/v1/memories", headers=acme, params={"user_id": "alice"}).status_code == 200
        assert http.post("/v1/memories/search", headers=globex, json={"query": "tea", "user_id": "bob"}).status_code == 200
        upstream.queue(Reply.error(500, "the model fell over"))
        assert http.post("/v1/chat/completions", headers=globex, json=chat).status_code == 500
        assert http.get("/v1/memories", params={"user_id": "alice"}).status_code == 401  # no key: no project's
        scrapes = {name: http.get("/metrics", headers=headers).text for name, headers in (("acme", acme), ("globex", globex))}

    for project, text in scrapes.items():
        seen = samples(text)
        assert seen, project
        strays = [(name, labels) for name, labels, _ in seen if labels.get("project") != project]
        assert strays == [], f"{project}'s scrape shows {strays[:5]}"
    acme_routes = {labels["route"] for name, labels, _ in samples(scrapes["acme"]) if name == "memlane_requests_total"}
    globex_routes = {labels["route"] for name, labels, _ in samples(scrapes["globex"]) if name == "memlane_requests_total"}
    assert acme_routes == {"/v1/memories"}, acme_routes
    assert globex_routes == {"/v1/memories/search", "/v1/chat/completions"}, globex_routes
    upstream_errors = {project: [value for name, _, value in samples(text) if name == "memlane_upstream_errors_total"]
                       for project, text in scrapes.items()}
    assert upstream_errors == {"acme": [0.0], "globex": [1.0]}
