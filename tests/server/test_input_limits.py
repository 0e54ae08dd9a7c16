"""Every limit holds on every way into the server, and no client bytes make a 5xx: the same
request shapes through the memlane routes, mem0's, import, exchanges and chat."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import pytest

from memlane.testing import ScriptedUpstream
from memlane.testing.live_server import LiveServer

JSON = {"content-type": "application/json"}


def turns(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def ways_in(text: str, user: str = "alice", metadata: Any = None) -> dict[str, tuple[str, str, Any]]:
    """(method, path, JSON body) of each way a memory's text and scope reach the server."""
    extra = {"metadata": metadata} if metadata is not None else {}
    return {
        "add, text": ("POST", "/v1/memories", {"messages": text, "user_id": user, "infer": False, **extra}),
        "add, messages list": ("POST", "/v1/memories", {"messages": turns(text), "user_id": user, "infer": False, **extra}),
        "mem0 v3 add": ("POST", "/v3/memories/add/", {"messages": turns(text), "user_id": user, "infer": False, **extra}),
        "mem0 v1 add": ("POST", "/v1/memories/", {"messages": turns(text), "user_id": user, "infer": False, **extra}),
        "import": ("POST", "/v1/memories/import", {"memory": text, "user_id": user, **extra}),
        "exchange": ("POST", "/v1/exchanges", {"scope": {"user_id": user}, "messages": turns(text), **extra}),
        "chat": ("POST", "/v1/chat/completions", {"model": "m", "user_id": user, "messages": turns(text), **extra}),
    }


def send(server: LiveServer, method: str, path: str, body: Any, raw: str | None = None) -> httpx.Response:
    content = raw if raw is not None else json.dumps(body)
    return httpx.request(method, server.url + path, content=content.encode("utf-8", "surrogatepass"), headers=JSON, timeout=30)


def assert_refused(response: httpx.Response, needle: str) -> None:
    assert response.status_code == 400, response.text[:300]
    assert needle in response.json()["error"]["message"], response.text[:300]


def nothing_stored(server: LiveServer, upstream: ScriptedUpstream) -> None:
    assert httpx.get(server.url + "/v1/entities/").json()["results"] == []
    assert [r for r in upstream.requests if r.stage == "chat"] == []


@pytest.mark.parametrize("way", list(ways_in("")))
def test_a_memory_over_max_memory_chars_is_refused(server: LiveServer, upstream: ScriptedUpstream, way: str) -> None:
    method, path, body = ways_in("x" * 2_000_000)[way]
    refused = send(server, method, path, body)
    if way in ("exchange", "chat"):  # a turn the model reads, not a memory: fact extraction reads its tail
        assert refused.status_code == 200, refused.text[:300]
        return
    assert_refused(refused, "at most 20000 (server.max_memory_chars)")
    nothing_stored(server, upstream)


@pytest.mark.parametrize("way", list(ways_in("")))
@pytest.mark.parametrize("user, why", [("u" * 1_000_000, "scope ids are at most 256"), ("   ", "must not be blank"),
                                       ("a\u0085b", "control characters"), ("\x1fb", "control characters")],
                         ids=["1MB", "blank", "NEL", "separator"])
def test_scope_ids_are_checked_on_every_way_in(server: LiveServer, upstream: ScriptedUpstream, way: str, user: str, why: str) -> None:
    method, path, body = ways_in("Likes tea", user=user)[way]
    assert_refused(send(server, method, path, body), why)
    nothing_stored(server, upstream)


@pytest.mark.parametrize("way", list(ways_in("")))
@pytest.mark.parametrize("where", ["text", "user_id", "metadata"])
def test_a_lone_surrogate_anywhere_is_a_400_naming_it(server: LiveServer, upstream: ScriptedUpstream, way: str, where: str) -> None:
    method, path, body = ways_in("SURROGATE" if where == "text" else "Likes tea", user="SURROGATE" if where == "user_id" else "alice",
                                 metadata={"k": "SURROGATE"} if where == "metadata" else None)[way]
    raw = json.dumps(body).replace("SURROGATE", "\\ud800")
    assert_refused(send(server, method, path, None, raw=raw), "lone surrogate escape \\ud800")
    nothing_stored(server, upstream)


def test_invalid_utf8_is_a_400_and_the_inspector_keeps_working(server: LiveServer, upstream: ScriptedUpstream) -> None:
    body = b'{"model": "m", "user_id": "alice", "messages": [{"role": "user", "content": "caf\xe9"}]}'
    refused = httpx.post(server.url + "/v1/chat/completions", content=body, headers=JSON)
    assert refused.status_code == 400 and "not valid UTF-8 (byte" in refused.json()["error"]["message"]
    send(server, "POST", "/v1/chat/completions", None, raw=json.dumps(ways_in("x")["chat"][2]).replace('"x"', '"\\ud800"'))
    assert httpx.get(server.url + "/ui/chats").status_code == 200
    paired = send(server, "POST", "/v1/memories", {"messages": "Loves 😀 emoji", "user_id": "alice", "infer": False})
    assert paired.status_code == 200, "a surrogate pair (escaped by json.dumps) is fine"
    assert httpx.get(server.url + "/v1/memories", params={"user_id": "alice"}).json()["results"][0]["memory"] == "Loves 😀 emoji"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_gets_the_413_not_a_reset(server: LiveServer, chunked: bool) -> None:
    body = b'{"messages": "' + b"x" * (9 * 1024 * 1024) + b'", "user_id": "alice"}'
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        head = b"POST /v1/memories HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        if chunked:
            sock.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
            for start in range(0, len(body), 256 * 1024):
                piece = body[start:start + 256 * 1024]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            sock.sendall(b"0\r\n\r\n")
        else:
            sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        answer = b""
        while b"request_too_large" not in answer:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed without the 413: {answer[:200]!r}"
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413")


def test_mem0_paging_reads_one_page_and_links_relatively(server: LiveServer) -> None:
    api = httpx.Client(base_url=server.url)
    api.post("/v1/memories", json={"messages": [f"fact {i}" for i in range(5)], "user_id": "alice", "infer": False})
    page = api.post("/v3/memories/?page=2&page_size=2", json={"filters": {"user_id": "alice"}}, headers={"host": "10.0.0.9"}).json()
    assert page["count"] == 5 and len(page["results"]) == 2
    assert page["next"] == "/v3/memories/?page=3&page_size=2" and page["previous"] == "/v3/memories/?page=1&page_size=2"
    last = api.post("/v3/memories/?page=3&page_size=2", json={"filters": {"user_id": "alice"}}).json()
    assert len(last["results"]) == 1 and last["next"] is None
    assert api.post("/v3/memories/?page=99&page_size=2", json={"filters": {"user_id": "alice"}}).json()["results"] == []


@pytest.mark.parametrize("field, value", [("top_k", 0), ("top_k", -1), ("limit", True), ("limit", "10"), ("top_k", 1.5)])
def test_mem0_search_takes_only_positive_integer_limits(server: LiveServer, field: str, value: Any) -> None:
    refused = httpx.post(server.url + "/v3/memories/search/", json={"query": "tea", "filters": {"user_id": "alice"}, field: value})
    assert_refused(refused, f"{field} must be a positive integer")


def test_the_slash_redirect_does_not_reflect_the_host(server: LiveServer) -> None:
    moved = httpx.get(server.url + "/ui/?x=1", headers={"host": "203.0.113.7:8765"})
    assert moved.status_code == 307 and moved.headers["location"] == "/ui?x=1"
