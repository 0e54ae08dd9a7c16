"""The memory REST API, auth and project isolation, and the operations endpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import httpx
import openai
import pytest

from memlane.server.keys import KeyStore
from memlane.server.limits import Limits
from memlane.testing import ScriptedUpstream, openai_spec
from memlane.testing.live_server import LiveServer
from tests.scenarios import SPEC_PATH, restaurant_llm


def test_memory_rest_round_trip(server: LiveServer) -> None:
    api = httpx.Client(base_url=server.url)
    added = api.post("/v1/memories", json={"messages": [{"role": "user", "content": "Is allergic to cheese"}],
                                           "user_id": "alice", "infer": False, "metadata": {"category": "food"}}).json()
    memory_id = added["results"][0]["id"]
    assert added["results"][0]["event"] == "ADD"
    inferred = api.post("/v1/memories", json={"messages": "I love Indian food", "user_id": "alice"}).json()
    assert [r["memory"] for r in inferred["results"]] == ["Loves Indian food"]
    listed = api.get("/v1/memories", params={"user_id": "alice", "filters": '{"category": "food"}'}).json()["results"]
    assert [r["id"] for r in listed] == [memory_id]
    hits = api.post("/v1/memories/search", json={"query": "dinner ideas", "user_id": "alice", "limit": 5}).json()["results"]
    assert {h["memory"] for h in hits} == {"Is allergic to cheese", "Loves Indian food"} and all("score" in h for h in hits)
    assert api.get(f"/v1/memories/{memory_id}").json()["memory"] == "Is allergic to cheese"
    changed = api.put(f"/v1/memories/{memory_id}", json={"text": "Is severely allergic to cheese"}).json()
    assert changed["memory"] == "Is severely allergic to cheese" and changed["metadata"] == {"role": "user", "category": "food"}
    assert api.put(f"/v1/memories/{memory_id}", json={"metadata": {"category": "health"}}).json()["metadata"] == {"category": "health"}
    assert api.delete(f"/v1/memories/{memory_id}").json() == {"message": "Memory deleted successfully!"}
    assert [e["event"] for e in api.get(f"/v1/memories/{memory_id}/history").json()] == ["ADD", "UPDATE", "UPDATE", "DELETE"]
    assert api.delete("/v1/memories", params={"user_id": "alice"}).json() == {"message": "Memories deleted successfully!"}
    assert api.get("/v1/memories", params={"user_id": "alice"}).json() == {"results": []}


@pytest.mark.parametrize(
    "method,path,kwargs,status,code",
    [
        ("GET", "/v1/memories/nope", {}, 404, "not_found"),
        ("GET", "/v1/memories", {}, 400, "scope"),
        ("POST", "/v1/memories/search", {"json": {"query": "", "user_id": "a"}}, 400, "validation"),
        ("POST", "/v1/memories/search", {"json": {"query": "x", "user_id": "a", "limit": 5000}}, 400, "limit_too_large"),
        ("POST", "/v1/memories/search", {"json": {"query": "x", "user_id": "a", "bogus": 1}}, 400, "invalid_request"),
        ("GET", "/v1/memories", {"params": {"user_id": "a", "filters": "{oops"}}, 400, "invalid_filters"),
        ("POST", "/v1/memories", {"json": {"messages": "x", "user_id": "a", "infer": False, "metadata": {"k": "v" * 20000}}}, 400, "metadata_too_large"),
        ("PUT", "/v1/memories/nope", {"json": {}}, 400, "nothing_to_update"),
    ],
)
def test_errors_are_envelopes(server: LiveServer, method: str, path: str, kwargs: dict[str, Any], status: int, code: str) -> None:
    r = httpx.request(method, server.url + path, **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    openai_spec.validate(r.json(), "ErrorResponse", SPEC_PATH)


def test_body_size_limit_is_413(make_server: Callable[..., LiveServer], upstream: ScriptedUpstream) -> None:
    server = make_server(limits=Limits(max_body_bytes=10_000))
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x" * 20_000}]})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * 1000

    r = httpx.post(server.url + "/v1/memories", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_projects_are_isolated_on_every_endpoint(make_server: Callable[..., LiveServer], tmp_path: Path, upstream: ScriptedUpstream,
                                                store_config: Callable[[Path], dict[str, Any]]) -> None:
    """On every backend: a file, a PostgreSQL schema or a Qdrant collection per project."""
    upstream.handler = restaurant_llm
    keys = KeyStore(tmp_path / "keys.db")
    key_a, _ = keys.create("acme")
    key_b, _ = keys.create("globex")
    server = make_server(keys=keys, vector_store=store_config(tmp_path / "server.db"))
    a = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key_a}"})
    b = httpx.Client(base_url=server.url, headers={"Authorization": f"Token {key_b}"})  # mem0's scheme works too
    secret = a.post("/v1/memories", json={"messages": "Acme's launch code is 1234", "user_id": "alice", "infer": False}).json()["results"][0]["id"]
    assert b.get(f"/v1/memories/{secret}").status_code == 404
    assert b.put(f"/v1/memories/{secret}", json={"text": "stolen"}).status_code == 404
    assert b.delete(f"/v1/memories/{secret}").status_code == 404
    assert b.get(f"/v1/memories/{secret}/history").status_code == 404
    assert b.get("/v1/memories", params={"user_id": "alice"}).json() == {"results": []}
    assert b.post("/v1/memories/search", json={"query": "launch code", "user_id": "alice"}).json() == {"results": []}
    b.delete("/v1/memories", params={"user_id": "alice"})
    sdk_b = openai.OpenAI(base_url=server.url + "/v1", api_key=key_b, max_retries=0)
    upstream.requests.clear()
    sdk_b.chat.completions.create(model="m", messages=[{"role": "user", "content": "what is the launch code?"}], extra_body={"user_id": "alice"})
    assert "1234" not in str(upstream.chat_requests("chat")[0].messages)
    assert a.get(f"/v1/memories/{secret}").json()["memory"] == "Acme's launch code is 1234"
    assert a.get("/v1/whoami").json() == {"project": "acme"}


def test_missing_or_invalid_keys_are_401_envelopes(make_server: Callable[..., LiveServer], tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys.db")
    key, info = keys.create("acme")
    server = make_server(keys=keys)
    for headers in ({}, {"Authorization": "Bearer ml-wrong"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}):
        for method, path in (("GET", "/v1/memories?user_id=a"), ("POST", "/v1/chat/completions"), ("GET", "/v1/models")):
            r = httpx.request(method, server.url + path, headers=headers, json={})
            assert r.status_code == 401, (headers, path)
            assert r.json()["error"]["type"] == "authentication_error" and r.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url + "/v1", api_key="ml-wrong", max_retries=0).models.list()
    keys.revoke(info.id)
    keys.create("other")  # auth stays on while any key is active
    assert httpx.get(server.url + "/v1/whoami", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    assert httpx.get(server.url + "/healthz").status_code == 200, "health needs no key"


def test_operations_endpoints(server: LiveServer, sdk: openai.OpenAI) -> None:
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(server.url + "/readyz").json()
    assert {k: ready[k] for k in ("status", "memory", "chat")} == {"status": "ready", "memory": "ready", "chat": "ready"}
    assert "ANTHROPIC_API_KEY" in ready["messages"], "this server has no Anthropic model server, and says so"
    sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], extra_body={"user_id": "alice"})
    text = httpx.get(server.url + "/metrics").text
    assert 'memlane_requests_total{method="POST",project="default",route="/v1/chat/completions",status="200"} 1' in text
    assert 'memlane_recalls_total{project="default"} 1' in text
    assert "memlane_outbox_depth" in text and 'memlane_upstream_errors_total{project="default"} 0' in text
    spec = httpx.get(server.url + "/openapi.json").json()
    for path in ("/v1/chat/completions", "/v1/models", "/v1/memories", "/v1/memories/search", "/v1/memories/{memory_id}",
                 "/v1/memories/{memory_id}/history", "/healthz", "/readyz", "/metrics"):
        assert path in spec["paths"], path


def test_jsonl_export_import_round_trip(make_server: Callable[..., LiveServer], tmp_path: Path, upstream: ScriptedUpstream) -> None:
    keys = KeyStore(tmp_path / "keys.db")
    key_a, _ = keys.create("source")
    key_b, _ = keys.create("target")
    server = make_server(keys=keys)
    a = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key_a}"})
    b = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key_b}"})
    first = a.post("/v1/memories", json={"messages": ["Is allergic to cheese", "Loves Indian food"], "user_id": "alice",
                                         "infer": False, "metadata": {"category": "food"}}).json()["results"][0]["id"]
    a.put(f"/v1/memories/{first}", json={"text": "Is severely allergic to cheese"})
    a.post("/v1/memories", json={"messages": "Plays chess", "agent_id": "coach", "infer": False})
    exported = a.get("/v1/memories/export").text
    lines = [json.loads(line) for line in exported.splitlines()]
    assert len(lines) == 3 and all("history" in line for line in lines)
    jsonl = {"content-type": "application/x-ndjson"}  # what export answers with
    assert b.post("/v1/memories/import", content=exported, headers=jsonl).json() == {"imported": 3, "skipped": 0}
    assert b.post("/v1/memories/import", content=exported, headers=jsonl).json() == {"imported": 0, "skipped": 3}, "re-running is safe"
    assert b.get(f"/v1/memories/{first}").json() == a.get(f"/v1/memories/{first}").json()
    assert b.get(f"/v1/memories/{first}/history").json() == a.get(f"/v1/memories/{first}/history").json()
    assert b.post("/v1/memories/search", json={"query": "cheese", "user_id": "alice", "limit": 1}).json()["results"][0]["id"] == first
    only_alice = a.get("/v1/memories/export", params={"user_id": "alice"}).text.splitlines()
    assert len(only_alice) == 2
    bad = b.post("/v1/memories/import", content=b'{"memory": "x", "user_id": "u"}\n{oops\n', headers=jsonl)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_jsonl"


@pytest.mark.parametrize("route", ["/v1/memories/{id}", "/v1/memories/{id}/"], ids=["memlane", "mem0"])
def test_put_races_lose_no_update(make_server: Callable[..., LiveServer], tmp_path: Path, route: str,
                                  store_config: Callable[[Path], dict[str, Any]], fast_embedder_config: dict[str, Any]) -> None:
    """The reported race, on every backend: 8 clients PUT new text while 8 PUT only metadata on one
    memory. Every PUT is a 200, and no text answered with 200 is silently reverted."""
    from tests.engine.test_concurrency import assert_no_text_update_lost
    from tests.threads import run_in_threads

    server = make_server(vector_store=store_config(tmp_path / "server.db"), embedder=fast_embedder_config)
    api = httpx.Client(base_url=server.url, timeout=60)
    memory_id = api.post("/v1/memories", json={"messages": "Version start", "user_id": "alice", "infer": False}).json()["results"][0]["id"]
    url = route.format(id=memory_id)
    written: set[str] = set()
    statuses: list[int] = []
    turn = iter(range(16))

    def worker() -> None:
        n = next(turn)
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for i in range(10):
                body = {"metadata": {"writer": n, "round": i}} if n % 2 else {"text": f"Version {n}.{i}"}
                r = http.put(url, json=body)
                statuses.append(r.status_code)
                if r.status_code == 200 and "text" in body:
                    written.add(body["text"])

    assert run_in_threads(worker, 16, 180) == []
    assert statuses == [200] * 160
    final = api.get(f"/v1/memories/{memory_id}").json()
    assert_no_text_update_lost(api.get(f"/v1/memories/{memory_id}/history").json(), written, final["memory"])
    assert final["metadata"]["writer"] % 2 == 1


def test_openapi_documents_the_errors_the_server_sends(server: LiveServer) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    assert "422" not in json.dumps({p: {m: o["responses"] for m, o in ops.items()} for p, ops in spec["paths"].items()})
    search = spec["paths"]["/v1/memories/search"]["post"]["responses"]
    assert {"200", "400", "401", "503"} <= set(search)
    assert search["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
    chat = spec["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert {"400", "401", "502", "504"} <= set(chat)
    r = httpx.post(server.url + "/v1/memories/search", json={"query": 5})
    assert r.status_code == 400 and set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_method_not_allowed_names_the_allowed_methods(server: LiveServer) -> None:
    r = httpx.patch(server.url + "/v1/memories/search", json={})
    assert r.status_code == 405 and set(r.headers["allow"].replace(" ", "").split(",")) == {"POST"}
    assert r.json()["error"]["code"] == "method_not_allowed" and "POST" in r.json()["error"]["message"]


def test_api_docs_work_offline_and_the_document_validates(server: LiveServer) -> None:
    """/docs loads Swagger UI from memlane itself (no CDN); /openapi.json is a valid OpenAPI
    document that describes the chat request and the bearer scheme."""
    import re

    from openapi_spec_validator import validate

    page = httpx.get(server.url + "/docs")
    assert page.status_code == 200 and not re.search(r"(src|href)=[\"']https?://", page.text), "no asset from the network"
    for asset in re.findall(r"(?:src|href)=[\"'](/docs/assets/[^\"']+)", page.text):
        assert httpx.get(server.url + asset).status_code == 200, asset
    spec = httpx.get(server.url + "/openapi.json").json()
    validate(spec)
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    chat = spec["paths"]["/v1/chat/completions"]["post"]
    assert chat["security"] == [{"bearer": []}]
    body = chat["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ChatRequest"}
    assert {"model", "messages", "user_id", "include_memories"} <= set(spec["components"]["schemas"]["ChatRequest"]["properties"])


def test_add_takes_the_conversation_time(server: LiveServer) -> None:
    api = httpx.Client(base_url=server.url)
    body = {"messages": "Moved to Lisbon", "user_id": "alice", "infer": False}
    for timestamp in (1683554160, "2023-05-08T13:56:00Z"):
        added = api.post("/v1/memories", json={**body, "timestamp": timestamp}).json()["results"][0]
        assert api.get(f"/v1/memories/{added['id']}").json()["created_at"] == "2023-05-08T13:56:00.000000+00:00"
        api.delete(f"/v1/memories/{added['id']}")
    for bad in ("last tuesday", True):
        refused = api.post("/v1/memories", json={**body, "timestamp": bad})
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "timestamp", refused.text


def test_metrics_have_latency_histograms_for_recall_upstream_and_learning(server: LiveServer, sdk: openai.OpenAI,
                                                                          upstream: ScriptedUpstream) -> None:
    """Percentiles for Prometheus/Grafana: each stage is a histogram per project, parsed here
    with prometheus-client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    from tests.threads import wait_until

    upstream.handler = restaurant_llm
    sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "I love Indian food"}], extra_body={"user_id": "alice"})

    def counts() -> dict[str, float]:
        families = text_string_to_metric_families(httpx.get(server.url + "/metrics").text)
        return {f"{family.name}:{s.labels.get('route', s.labels.get('project'))}": s.value
                for family in families if family.type == "histogram" for s in family.samples if s.name.endswith("_count")}

    assert wait_until(lambda: counts().get("memlane_learn_duration_seconds:default") == 1, 30)
    seen = counts()
    assert seen["memlane_recall_duration_seconds:default"] == 1 and seen["memlane_upstream_duration_seconds:default"] == 1
    assert seen["memlane_request_duration_seconds:/v1/chat/completions"] == 1
    buckets = [line for line in httpx.get(server.url + "/metrics").text.splitlines()
               if line.startswith("memlane_recall_duration_seconds_bucket")]
    assert len(buckets) >= 10 and any('le="+Inf"' in line for line in buckets)
