"""One app, four ways: the same code, sync and async, on the embedded engine and on a memlane
server (hosted), touching every public attribute of the client; the answers are the same."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from memlane import AsyncMemlane, Memlane
from memlane.server.app import create_app
from memlane.server.keys import KeyStore
from memlane.testing import ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import client_config, restaurant_llm

SEED = "I love Indian food but I'm allergic to cheese."
DINNER = "Suggest dinner options in San Francisco."
ATTRIBUTES = ["chat", "memory", "config", "stats", "upstream", "mode", "host", "flush", "sync", "pending_sync", "outbox_status", "close"]


def app(client: Memlane) -> dict[str, Any]:
    assert all(hasattr(client, name) for name in ATTRIBUTES)
    client.chat.completions.create(messages=[{"role": "user", "content": SEED}], model="m", user_id="alice")
    deadline = time.monotonic() + 30
    while len(client.memory.get_all(user_id="alice")["results"]) < 2:
        assert client.flush(timeout=1) in (True, False) and time.monotonic() < deadline
        time.sleep(0.05)
    resp = client.chat.completions.create(messages=[{"role": "user", "content": DINNER}], model="m", user_id="alice", include_memories=True)
    (tea,) = client.memory.add("Likes tea", user_id="alice", infer=False)["results"]
    client.memory.update(tea["id"], metadata={"kind": "drink"})
    found = client.memory.search("tea", user_id="alice", limit=1)["results"][0]
    client.memory.delete(tea["id"])
    return {
        "recalled": sorted(m.memory for m in resp.metadata.memories),
        "found": (found["memory"], found["metadata"]),
        "history": [e["event"] for e in client.memory.history(tea["id"])],
        "left": sorted(r["memory"] for r in client.memory.get_all(user_id="alice")["results"]),
        "chats": client.stats.chats,
        "synced": (client.sync(), client.pending_sync()),
        "status": isinstance(client.outbox_status(), dict),
        "has_config": client.config is not None and client.upstream is not None,
    }


async def async_app(client: AsyncMemlane) -> dict[str, Any]:
    assert all(hasattr(client, name) for name in ATTRIBUTES)
    await client.chat.completions.create(messages=[{"role": "user", "content": SEED}], model="m", user_id="alice")
    deadline = time.monotonic() + 30
    while len((await client.memory.get_all(user_id="alice"))["results"]) < 2:
        assert await client.flush(timeout=1) in (True, False) and time.monotonic() < deadline
        await asyncio.sleep(0.05)
    resp = await client.chat.completions.create(messages=[{"role": "user", "content": DINNER}], model="m", user_id="alice", include_memories=True)
    (tea,) = (await client.memory.add("Likes tea", user_id="alice", infer=False))["results"]
    await client.memory.update(tea["id"], metadata={"kind": "drink"})
    found = (await client.memory.search("tea", user_id="alice", limit=1))["results"][0]
    await client.memory.delete(tea["id"])
    return {
        "recalled": sorted(m.memory for m in resp.metadata.memories),
        "found": (found["memory"], found["metadata"]),
        "history": [e["event"] for e in await client.memory.history(tea["id"])],
        "left": sorted(r["memory"] for r in (await client.memory.get_all(user_id="alice"))["results"]),
        "chats": client.stats.chats,
        "synced": (await client.sync(), client.pending_sync()),
        "status": isinstance(client.outbox_status(), dict),
        "has_config": client.config is not None and client.upstream is not None,
    }


EXPECTED = {
    "recalled": ["Is allergic to cheese", "Loves Indian food"],
    "found": ("Likes tea", {"kind": "drink"}),  # metadata given to update replaces the old
    "history": ["ADD", "UPDATE", "DELETE"],
    "left": ["Is allergic to cheese", "Loves Indian food"],
    "chats": 2,
    "synced": (0, 0),
    "status": True,
    "has_config": True,
}


@pytest.fixture
def hosted(tmp_path: Path, upstream: ScriptedUpstream) -> Iterator[tuple[str, str]]:
    upstream.handler = restaurant_llm
    keys = KeyStore(tmp_path / "keys.db")
    key, _ = keys.create("acme")
    with LiveServer(create_app(client_config(tmp_path / "server.db", upstream), keys=keys, drain_seconds=5)) as server:
        yield server.url, key


def test_sync_embedded(tmp_path: Path, upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    with Memlane(config=client_config(tmp_path / "e.db", upstream)) as client:
        assert (client.mode, client.host) == ("embedded", None)
        assert app(client) == EXPECTED


def test_sync_hosted(hosted: tuple[str, str]) -> None:
    url, key = hosted
    with Memlane(api_key=key, host=url) as client:
        assert (client.mode, client.host) == ("hosted", url)
        assert app(client) == EXPECTED


def test_async_embedded(tmp_path: Path, upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm

    async def run() -> dict[str, Any]:
        async with AsyncMemlane(config=client_config(tmp_path / "a.db", upstream)) as client:
            assert client.mode == "embedded"
            return await async_app(client)

    assert asyncio.run(run()) == EXPECTED


def test_async_hosted(hosted: tuple[str, str]) -> None:
    url, key = hosted

    async def run() -> dict[str, Any]:
        async with AsyncMemlane(api_key=key, host=url) as client:
            assert client.mode == "hosted"
            return await async_app(client)

    assert asyncio.run(run()) == EXPECTED


def test_mixing_modes_is_a_clear_error(tmp_path: Path) -> None:
    from memlane import ConfigError

    with pytest.raises(ConfigError, match="hosted mode takes"):
        Memlane({"vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "x.db")}}}, api_key="k")
    with pytest.raises(ConfigError, match="fallback is for hosted mode"):
        Memlane(fallback={"base_url": "http://127.0.0.1:9"})


@pytest.mark.parametrize("mistake,error", [({"filters": {"priority": {"bogus": 1}}}, "FilterError"),
                                           ({"user_id": "a\x1fb"}, "ValidationError"), ({"limit": 0}, "ValidationError")])
def test_the_same_mistake_raises_the_same_error_in_both_modes(tmp_path: Path, hosted: tuple[str, str], upstream: ScriptedUpstream,
                                                              mistake: dict[str, Any], error: str) -> None:
    import memlane

    url, key = hosted
    kwargs = {"user_id": "alice", **mistake}
    with Memlane(config=client_config(tmp_path / "e.db", upstream)) as embedded, Memlane(api_key=key, host=url) as remote:
        for client in (embedded, remote):
            with pytest.raises(getattr(memlane, error)):
                client.chat.completions.create(messages=[{"role": "user", "content": "hi"}], model="m", **kwargs)
