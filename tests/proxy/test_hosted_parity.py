"""Hosted and embedded take the same arguments and raise the same errors: the caller's own
``extra_body``, a ``limit`` beyond the documented maximum (``server.max_limit``), a refused key on
chats and memory calls alike, and an unreachable server named by its URL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Iterator

import httpx
import openai
import pytest

import memlane
from memlane import AsyncMemlane, Memlane
from memlane.server.app import create_app
from memlane.server.keys import KeyStore
from memlane.testing import ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import client_config, restaurant_llm

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def hosted(tmp_path: Path, upstream: ScriptedUpstream) -> Iterator[tuple[str, str]]:
    upstream.handler = restaurant_llm
    keys = KeyStore(tmp_path / "keys.db")
    key, _ = keys.create("acme")
    with LiveServer(create_app(client_config(tmp_path / "server.db", upstream), keys=keys, drain_seconds=5)) as server:
        yield server.url, key


@pytest.fixture
def both(tmp_path: Path, hosted: tuple[str, str], upstream: ScriptedUpstream) -> Iterator[list[Memlane]]:
    url, key = hosted
    with Memlane(config=client_config(tmp_path / "e.db", upstream)) as embedded, Memlane(api_key=key, host=url) as remote:
        yield [embedded, remote]


def test_the_callers_extra_body_reaches_the_model_in_both_modes(both: list[Memlane], upstream: ScriptedUpstream) -> None:
    for client in both:
        upstream.requests.clear()
        client.chat.completions.create(messages=HI, model="m", user_id="alice", extra_body={"repetition_penalty": 1.1})
        (sent,) = upstream.chat_requests("chat")
        assert sent.json["repetition_penalty"] == 1.1, client.mode
        assert "user_id" not in sent.json, "memlane's fields never reach the model"


def test_the_callers_extra_body_in_the_async_hosted_client(hosted: tuple[str, str], upstream: ScriptedUpstream) -> None:
    url, key = hosted

    async def run() -> None:
        async with AsyncMemlane(api_key=key, host=url) as client:
            await client.chat.completions.create(messages=HI, model="m", user_id="alice", extra_body={"top_a": 0.2})
            stream = await client.chat.completions.create(messages=HI, model="m", user_id="alice", stream=True,
                                                          extra_body={"top_a": 0.3})
            assert [c async for c in stream]

    asyncio.run(run())
    assert [r.json["top_a"] for r in upstream.chat_requests("chat")] == [0.2, 0.3]


@pytest.mark.parametrize("call", ["chat", "search", "get_all", "chat top_k"])
def test_a_limit_beyond_the_maximum_is_the_same_validation_error(both: list[Memlane], call: str) -> None:
    for client in both:
        with pytest.raises(memlane.ValidationError, match="at most 1000") as refused:
            if call == "chat":
                client.chat.completions.create(messages=HI, model="m", user_id="alice", limit=5000)
            elif call == "chat top_k":
                client.chat.completions.create(messages=HI, model="m", user_id="alice", top_k=5000)
            elif call == "search":
                client.memory.search("food", user_id="alice", limit=5000)
            else:
                client.memory.get_all(user_id="alice", limit=5000)
        assert refused.value.param in ("limit", "top_k"), client.mode
    for client in both:  # the maximum itself is fine
        client.memory.get_all(user_id="alice", limit=1000)


def test_a_refused_key_is_one_error_type_for_chats_and_memory_calls(hosted: tuple[str, str]) -> None:
    url, _ = hosted
    with Memlane(api_key="ml-wrong", host=url) as client:
        calls = [lambda: client.chat.completions.create(messages=HI, model="m", user_id="alice"),
                 lambda: client.memory.get_all(user_id="alice"),
                 lambda: client.memory.search("food", user_id="alice")]
        for call in calls:
            with pytest.raises(memlane.AuthenticationError, match=f"memlane server at {url} refused the API key") as refused:
                call()
            assert isinstance(refused.value, openai.AuthenticationError) and isinstance(refused.value, memlane.ConfigError)
            assert refused.value.status_code == 401 and refused.value.param == "api_key"


def test_a_refused_key_in_the_async_client(hosted: tuple[str, str]) -> None:
    url, _ = hosted

    async def run() -> list[type]:
        async with AsyncMemlane(api_key="ml-wrong", host=url) as client:
            seen = []
            for call in (client.chat.completions.create(messages=HI, model="m", user_id="alice"), client.memory.get_all(user_id="alice")):
                with pytest.raises(memlane.AuthenticationError) as refused:
                    await call
                seen.append(type(refused.value))
            return seen

    first, second = asyncio.run(run())
    assert first is second and issubclass(first, openai.AuthenticationError)


def test_a_server_that_is_down_is_named_by_its_url() -> None:
    url = "http://127.0.0.1:9"
    with Memlane(api_key="k", host=url) as client:
        with pytest.raises(memlane.StoreError, match=f"cannot reach the memlane server at {url}"):
            client.memory.get_all(user_id="alice")
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)  # (nothing listens there)


def test_the_memory_lifecycle_is_the_same_in_both_modes(both: list[Memlane]) -> None:
    """expiration_date, immutable, show_expired, mem0's search options and delete_users, through
    the engine (embedded) and through the server's REST API (hosted): same answers, same errors."""
    import datetime as _dt

    yesterday = _dt.date.today() - _dt.timedelta(days=2)
    for client in both:
        memory = client.memory
        old = memory.add("Had a coupon", user_id="alice", infer=False, expiration_date=yesterday)["results"][0]["id"]
        veg = memory.add("Is vegetarian", user_id="alice", infer=False, immutable=True)["results"][0]["id"]
        assert [r["memory"] for r in memory.get_all(user_id="alice")["results"]] == ["Is vegetarian"], client.mode
        assert len(memory.get_all(user_id="alice", show_expired=True)["results"]) == 2, client.mode
        hits = memory.search("coupon", user_id="alice", show_expired=True, fields=["memory", "expiration_date"])["results"]
        assert {"memory": "Had a coupon", "expiration_date": yesterday.isoformat()} in hits, client.mode
        with pytest.raises(memlane.ValidationError, match="immutable"):
            memory.update(veg, "Eats fish")
        with pytest.raises(memlane.ValidationError) as refused:
            memory.search("coupon", user_id="alice", fields=["colour"])
        assert refused.value.param == "fields", client.mode
        memory.update(old, expiration_date=None)
        assert len(memory.get_all(user_id="alice")["results"]) == 2, client.mode
        assert memory.delete_users(user_id="alice")["deleted"] == 2, client.mode
        assert memory.get_all(user_id="alice")["results"] == [], client.mode
