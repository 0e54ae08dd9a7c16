"""mem0ai's own MemoryClient, unchanged, against memlane: only the host differs."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from memlane.server.keys import KeyStore
from memlane.testing import ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import restaurant_llm


@pytest.fixture
def mem0_client(make_server: Callable[..., LiveServer], tmp_path: Path, upstream: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MEM0_TELEMETRY", "False")  # no telemetry, ever (and no network here)
    from mem0 import MemoryClient

    upstream.handler = restaurant_llm
    keys = KeyStore(tmp_path / "keys.db")
    key, _ = keys.create("acme")
    server = make_server(keys=keys)
    return MemoryClient(api_key=key, host=server.url)


def test_memory_client_works_unchanged(mem0_client) -> None:  # type: ignore[no-untyped-def]
    assert mem0_client.project_id == "acme"
    added = mem0_client.add([{"role": "user", "content": "I love Indian food but I'm allergic to cheese."}], user_id="alice",
                            metadata={"source": "mem0"})
    assert {r["memory"] for r in added["results"]} == {"Is allergic to cheese", "Loves Indian food"}
    mem0_client.add("Prefers window seats", user_id="alice", infer=False)
    listed = mem0_client.get_all(filters={"user_id": "alice"})
    assert listed["count"] == 3 and len(listed["results"]) == 3
    page = mem0_client.get_all(filters={"user_id": "alice"}, page=1, page_size=2)
    assert len(page["results"]) == 2 and page["next"] is not None and page["count"] == 3
    hits = mem0_client.search("dinner ideas", filters={"user_id": "alice"}, top_k=2)["results"]
    assert len(hits) == 2 and all("score" in h for h in hits)
    memory_id = next(r["id"] for r in listed["results"] if r["memory"] == "Is allergic to cheese")
    assert mem0_client.get(memory_id)["memory"] == "Is allergic to cheese"
    mem0_client.update(memory_id, text="Is severely allergic to cheese")
    assert mem0_client.get(memory_id)["memory"] == "Is severely allergic to cheese"
    assert [e["event"] for e in mem0_client.history(memory_id)] == ["ADD", "UPDATE"]
    mem0_client.delete(memory_id)
    users = mem0_client.users()
    assert {(u["type"], u["name"], u["total_memories"]) for u in users["results"]} == {("user", "alice", 2)}
    mem0_client.delete_all(user_id="alice")
    assert mem0_client.get_all(filters={"user_id": "alice"})["results"] == []


def test_missing_memory_is_a_mem0_error(mem0_client) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Exception) as info:
        mem0_client.get("does-not-exist")
    assert "not found" in str(info.value).lower()


def test_older_client_paths(server) -> None:  # type: ignore[no-untyped-def]
    import httpx

    api = httpx.Client(base_url=server.url)
    assert api.post("/v1/memories/", json={"messages": "Likes tea", "user_id": "zoe", "infer": False, "platform_only": 1}).status_code == 200
    assert [r["memory"] for r in api.post("/v2/memories/", json={"filters": {"user_id": "zoe"}}).json()["results"]] == ["Likes tea"]
    assert api.post("/v2/memories/search/", json={"query": "tea", "filters": {"user_id": "zoe"}}).json()["results"][0]["memory"] == "Likes tea"


def test_add_takes_the_conversation_timestamp_as_mem0_platform_does(mem0_client) -> None:  # type: ignore[no-untyped-def]
    added = mem0_client.add("Moved to Lisbon", user_id="alice", infer=False, timestamp=1683554160)
    assert mem0_client.get(added["results"][0]["id"])["created_at"] == "2023-05-08T13:56:00.000000+00:00"
