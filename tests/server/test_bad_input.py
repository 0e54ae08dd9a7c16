"""Every bad input is a 4xx in OpenAI's envelope, naming the problem; never a 5xx.

The reported cases first, then property-based tests (hypothesis) that throw generated JSON at
every route's fields and insist on a non-5xx envelope.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memlane.testing import ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import restaurant_llm

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One server for the module (hypothesis runs many examples against it)."""
    from memlane.server.app import create_app
    from memlane.server.keys import KeyStore
    from tests.scenarios import client_config

    home = tmp_path_factory.mktemp("fuzz")
    with ScriptedUpstream() as upstream:
        upstream.handler = restaurant_llm
        embedder = {"provider": "openai", "config": {"base_url": upstream.url, "api_key": "k", "model": "e", "max_retries": 0}}
        app = create_app(client_config(home / "fuzz.db", upstream, embedder=embedder), keys=KeyStore(home / "keys.db"), drain_seconds=1)
        with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
            memory_id = http.post("/v1/memories", json={"messages": "Likes tea", "user_id": "alice", "infer": False}).json()["results"][0]["id"]
            http.headers["x-test-memory-id"] = memory_id
            yield http


def assert_client_error(r: httpx.Response, *, param: str | None = None) -> dict[str, Any]:
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:500])
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert param in (error["param"] or "") or param in error["message"], error
    return error


def nested(kind: str, depth: int) -> str:
    """A filter with ``depth`` nested groups, as JSON text (too deep for ``json.dumps`` itself)."""
    open_, close = (f'{{"{kind}": ', "}") if kind == "NOT" else (f'{{"{kind}": [', "]}")
    return open_ * depth + '{"category": "food"}' + close * depth


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/v3/memories/", {"filters": ["user_id", "alice"]}),
    ("POST", "/v3/memories/search/", {"query": "tea", "filters": "alice"}),
    ("POST", "/v3/memories/add/", {"messages": "x", "user_id": "alice", "infer": "no"}),
    ("POST", "/v1/chat/completions", {**CHAT, "messages": [{"role": {"x": 1}, "content": "hi"}], "user_id": "alice"}),
    ("POST", "/v1/memories", {"messages": [{"role": ["user"], "content": "hi"}], "user_id": "alice", "infer": False}),
    ("POST", "/v1/memories/search", {"query": "tea", "user_id": "alice", "filters": {"n": 2**63}}),
    ("POST", "/v1/memories/search", {"query": "tea", "user_id": "alice", "filters": {"n": {"gte": -(2**70)}}}),
    ("POST", "/v3/memories/search/", {"query": "tea", "filters": {"user_id": "alice", "n": {"in": [2**64]}}}),
], ids=["mem0-get_all-list-filters", "mem0-search-string-filters", "mem0-infer-string", "chat-role-object",
        "add-role-list", "filter-int-2^63", "filter-int-negative", "mem0-filter-in-2^64"])
def test_reported_client_mistakes_are_4xx(api: httpx.Client, method: str, path: str, body: dict[str, Any]) -> None:
    assert_client_error(api.request(method, path, json=body))


@pytest.mark.parametrize("kind", ["NOT", "AND", "OR"])
@pytest.mark.parametrize("depth", [17, 50, 200, 900])
def test_deeply_nested_filters_are_4xx_not_a_store_outage(api: httpx.Client, kind: str, depth: int) -> None:
    body = f'{{"query": "tea", "filters": {{"user_id": "alice", "AND": [{nested(kind, depth)}]}}}}'
    error = assert_client_error(api.post("/v3/memories/search/", content=body, headers={"content-type": "application/json"}))
    assert "levels deep" in error["message"]
    r = api.get("/v1/memories", params={"user_id": "alice", "filters": nested(kind, depth)})
    assert "levels deep" in assert_client_error(r)["message"]


def test_filters_up_to_the_depth_limit_work(api: httpx.Client) -> None:
    body = f'{{"query": "tea", "user_id": "alice", "filters": {nested("NOT", 16)}}}'
    found = api.post("/v1/memories/search", content=body, headers={"content-type": "application/json"})
    assert found.status_code == 200


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v3/memories/search/", "/v1/memories/import", "/v1/memories"])
def test_json_nested_a_thousand_deep_is_4xx(api: httpx.Client, path: str) -> None:
    deep = "[" * 1000 + "]" * 1000
    body = f'{{"model": "m", "messages": [{{"role": "user", "content": "hi"}}], "query": "x", "user_id": "alice", "extra": {deep}}}'
    error = assert_client_error(api.post(path, content=body, headers={"content-type": "application/json"}))
    assert error["code"] == "json_too_deep"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
filter_like = st.recursive(
    st.dictionaries(st.sampled_from(["category", "priority", "user_id", "tags", "created_at"]),
                    json_values | st.dictionaries(st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "icontains", "bogus"]),
                                                  json_values, max_size=2), max_size=3),
    lambda inner: st.dictionaries(st.sampled_from(["AND", "OR", "NOT", "$and"]), inner | st.lists(inner, max_size=3), min_size=1, max_size=2),
    max_leaves=8,
)
ids = st.sampled_from(["alice", "bob"]) | json_values
messages = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"]) | json_values, "content": st.text(max_size=30) | json_values}),
                    max_size=3) | json_values

FIELDS: dict[str, dict[str, Any]] = {
    "chat": {"model": st.just("m") | json_values, "messages": messages, "user_id": ids, "agent_id": ids, "metadata": json_values,
             "filters": filter_like | json_values, "limit": json_values, "top_k": json_values, "include_memories": json_values,
             "stream": st.booleans() | json_values, "temperature": json_values},
    "add": {"messages": messages, "user_id": ids, "run_id": ids, "metadata": json_values, "infer": st.just(False) | json_values, "filters": filter_like},
    "search": {"query": st.text(max_size=20) | json_values, "user_id": ids, "filters": filter_like | json_values, "limit": json_values,
               "top_k": json_values, "threshold": json_values},
    "update": {"text": st.text(max_size=20) | json_values, "data": json_values, "metadata": json_values},
}
ROUTES = [
    ("POST", "/v1/chat/completions", "chat"), ("POST", "/v1/memories", "add"), ("POST", "/v3/memories/add/", "add"),
    ("POST", "/v1/memories/search", "search"), ("POST", "/v3/memories/search/", "search"), ("POST", "/v3/memories/", "search"),
    ("PUT", "/v1/memories/{id}", "update"), ("PUT", "/v1/memories/{id}/", "update"),
]


@pytest.mark.parametrize("method,path,fields", ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_generated_bodies_never_get_a_5xx(api: httpx.Client, method: str, path: str, fields: str) -> None:
    strategy = st.fixed_dictionaries({}, optional=FIELDS[fields]) | json_values

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=strategy)
    def check(body: Any) -> None:
        url = path.format(id=api.headers["x-test-memory-id"])
        r = api.request(method, url, content=json.dumps(body), headers={"content-type": "application/json"})
        assert r.status_code < 500, (body, r.status_code, r.text[:300])
        if r.status_code >= 400:
            assert_client_error(r)

    check()


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(params=st.dictionaries(st.sampled_from(["user_id", "agent_id", "run_id", "filters", "limit", "page"]), st.text(max_size=30), max_size=4))
def test_generated_query_strings_never_get_a_5xx(api: httpx.Client, params: dict[str, str]) -> None:
    for method, path in (("GET", "/v1/memories"), ("DELETE", "/v1/memories"), ("GET", "/v1/memories/export")):
        if method == "DELETE" and "filters" not in params:
            continue  # keep alice's memory for the other examples
        r = api.request(method, path, params=params)
        assert r.status_code < 500, (params, r.status_code, r.text[:300])
