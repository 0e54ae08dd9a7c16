"""A reranker behind ``memlane serve``: the REST search and mem0's search (``rerank``, through
mem0's own ``MemoryClient``) use it, a server without one says it ignored ``rerank: true``, and
``/metrics`` counts the searches that fell back to the fused order."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from memlane.server.keys import KeyStore
from memlane.testing import ScriptedReranker, ScriptedUpstream
from memlane.testing.live_server import LiveServer

MEMORIES = ["I am allergic to cheese", "I live in San Francisco", "My favourite cuisine is Indian"]


def allergy_first(query: str, document: str) -> float:
    return 0.9 if "allergic" in document else 0.2


def seeded(server: LiveServer, headers: dict[str, str] | None = None) -> None:
    r = httpx.post(server.url + "/v1/memories", json={"messages": MEMORIES, "user_id": "alice", "infer": False}, headers=headers)
    assert r.status_code == 200, r.text


def test_the_rest_search_is_reranked_unless_it_says_rerank_false(make_server: Callable[..., LiveServer],
                                                                 reranker_server: ScriptedReranker) -> None:
    reranker_server.scorer = allergy_first
    server = make_server(reranker={"provider": "http", "config": {"base_url": reranker_server.url}})
    seeded(server)
    body = {"query": "what can't I eat?", "user_id": "alice"}

    reranked = httpx.post(server.url + "/v1/memories/search", json=body)
    fused = httpx.post(server.url + "/v1/memories/search", json={**body, "rerank": False})

    hits = reranked.json()["results"]
    assert hits[0]["memory"] == "I am allergic to cheese" and hits[0]["score"] == hits[0]["rerank_score"] == 0.9
    assert "hybrid_score" in hits[0] and "X-Memlane-Warning" not in reranked.headers
    assert all("rerank_score" not in h for h in fused.json()["results"])
    assert len(reranker_server.requests) == 1
    bad = httpx.post(server.url + "/v1/memories/search", json={**body, "rerank": "maybe"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "rerank"

    from memlane import Memlane

    with Memlane(api_key="unused-without-keys", host=server.url) as hosted:  # the hosted client's search says the same
        assert hosted.memory.search("what can't I eat?", user_id="alice")["results"] == hits
        assert hosted.memory.search("what can't I eat?", user_id="alice", rerank=False)["results"] == fused.json()["results"]


def test_mem0_memory_client_rerank_uses_the_reranker(make_server: Callable[..., LiveServer], reranker_server: ScriptedReranker,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEM0_TELEMETRY", "False")
    from mem0 import MemoryClient

    reranker_server.scorer = allergy_first
    keys = KeyStore(tmp_path / "keys.db")
    key, _ = keys.create("acme")
    server = make_server(keys=keys, reranker={"provider": "http", "config": {"base_url": reranker_server.url}})
    client = MemoryClient(api_key=key, host=server.url)
    client.add([{"role": "user", "content": m} for m in MEMORIES], user_id="alice", infer=False)

    hits = client.search("what can't I eat?", filters={"user_id": "alice"}, rerank=True)["results"]
    assert hits[0]["memory"] == "I am allergic to cheese" and hits[0]["rerank_score"] == 0.9
    plain = client.search("what can't I eat?", filters={"user_id": "alice"}, rerank=False)["results"]
    assert all("rerank_score" not in h for h in plain) and len(reranker_server.requests) == 1


def test_rerank_without_a_reranker_is_ignored_with_a_warning_header(make_server: Callable[..., LiveServer]) -> None:
    server = make_server()
    seeded(server)
    for path, body in (("/v3/memories/search/", {"query": "cheese", "filters": {"user_id": "alice"}, "rerank": True}),
                       ("/v1/memories/search", {"query": "cheese", "user_id": "alice", "rerank": True})):
        r = httpx.post(server.url + path, json=body)
        assert r.status_code == 200 and r.json()["results"][0]["memory"] == "I am allergic to cheese"
        assert r.headers["X-Memlane-Warning"].startswith("rerank ignored: this server has no reranker configured")
    assert "X-Memlane-Warning" not in httpx.post(server.url + "/v3/memories/search/", json={"query": "cheese", "user_id": "alice"}).headers


def test_metrics_count_the_searches_that_kept_the_fused_order(make_server: Callable[..., LiveServer], upstream: ScriptedUpstream) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    with socket.socket() as s:  # an address nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    server = make_server(reranker={"provider": "http", "config": {"base_url": dead}})
    seeded(server)
    for _ in range(2):
        r = httpx.post(server.url + "/v1/memories/search", json={"query": "what can't I eat?", "user_id": "alice"})
        assert r.status_code == 200 and len(r.json()["results"]) == 3

    def value(name: str) -> Any:
        families = text_string_to_metric_families(httpx.get(server.url + "/metrics").text)
        return next(s.value for f in families for s in f.samples if s.name == name and s.labels.get("project") == "default")

    assert value("memlane_rerank_fallbacks_total") == 2 and value("memlane_reranked_total") == 0
