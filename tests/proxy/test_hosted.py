"""``Memlane(api_key=..., host=...)``: the same code as the embedded client, answered by a
memlane server; and the fallback when that server is down."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from memlane import Memlane, NotFoundError
from memlane.server.app import create_app
from memlane.server.keys import KeyStore
from memlane.testing import ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import client_config, restaurant_llm

SEED = "I love Indian food but I'm allergic to cheese."
DINNER = "Suggest dinner options in San Francisco."


def restaurant_scenario(client: Memlane) -> dict[str, Any]:
    """App code that does not know which mode it runs in."""
    client.chat.completions.create(messages=[{"role": "user", "content": SEED}], model="gpt-4.1-nano", user_id="alice")
    deadline = time.monotonic() + 30
    while len(client.memory.get_all(user_id="alice")["results"]) < 2:
        client.flush(timeout=1)
        assert time.monotonic() < deadline, "nothing learnt"
        time.sleep(0.05)
    resp = client.chat.completions.create(messages=[{"role": "user", "content": DINNER}], model="gpt-4.1-nano",
                                          user_id="alice", include_memories=True)
    bob = client.chat.completions.create(messages=[{"role": "user", "content": DINNER}], model="gpt-4.1-nano",
                                         user_id="bob", include_memories=True)
    found = client.memory.search("cheese", user_id="alice", limit=1)["results"]
    return {
        "answer": resp.choices[0].message.content,
        "recalled": sorted(m.memory for m in resp.metadata.memories),
        "bob": [m.memory for m in bob.metadata.memories],
        "top": found[0]["memory"],
        "history": [e["event"] for e in client.memory.history(found[0]["id"])],
    }


def test_embedded_and_hosted_behave_the_same(make_server: Callable[..., LiveServer], tmp_path: Path, upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    with Memlane(config=client_config(tmp_path / "embedded.db", upstream)) as embedded:
        expected = restaurant_scenario(embedded)
    keys = KeyStore(tmp_path / "keys.db")
    key, _ = keys.create("acme")
    server = make_server(keys=keys)
    hosted = Memlane(api_key=key, host=server.url)
    try:
        assert restaurant_scenario(hosted) == expected
        assert expected["recalled"] == ["Is allergic to cheese", "Loves Indian food"] and expected["bob"] == []
        with pytest.raises(NotFoundError):
            hosted.memory.get("missing")
    finally:
        hosted.close()


def test_fallback_when_the_server_is_down_and_resync_once(tmp_path: Path, upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    config = client_config(tmp_path / "server.db", upstream)
    keys = KeyStore(tmp_path / "keys.db")
    key, _ = keys.create("acme")
    server = LiveServer(create_app(config, keys=keys, drain_seconds=5)).start()
    port = server.port
    client = Memlane(api_key=key, host=server.url, fallback={"base_url": upstream.url, "api_key": "k"})
    try:
        client.chat.completions.create(messages=[{"role": "user", "content": "hello"}], model="m", user_id="alice")
        server.stop()
        upstream.requests.clear()
        resp = client.chat.completions.create(messages=[{"role": "user", "content": SEED}], model="m", user_id="alice")
        assert resp.choices[0].message.content == "Noted! Here is my suggestion.", "answered by the upstream directly"
        assert upstream.chat_requests("chat")[0].messages == [{"role": "user", "content": SEED}]
        assert client.pending_sync() == 1
        assert client.sync() == 0 and client.pending_sync() == 1, "still down: kept"

        server = LiveServer(create_app(config, keys=keys, drain_seconds=5), port=port).start()
        # the next call resyncs first, automatically
        client.chat.completions.create(messages=[{"role": "user", "content": "thanks"}], model="m", user_id="alice")
        assert client.pending_sync() == 0
        deadline = time.monotonic() + 30
        while len(client.memory.get_all(user_id="alice")["results"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        learnt = sorted(r["memory"] for r in client.memory.get_all(user_id="alice")["results"])
        assert learnt == ["Is allergic to cheese", "Loves Indian food"], "resynced exactly once"
        assert client.sync() == 0
    finally:
        client.close()
        server.stop()


def test_no_fallback_means_the_connection_error_surfaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import openai

    client = Memlane(api_key="k", host="http://127.0.0.1:9")
    try:
        with pytest.raises(openai.APIConnectionError, match="memlane server at http://127.0.0.1:9.*fallback="):
            client.chat.completions.create(messages=[{"role": "user", "content": "x"}], model="m", user_id="a")
    finally:
        client.close()


@pytest.mark.parametrize("written", ["{url}/v1", "{url}/v1/", "{bare}", " {url}/ "])
def test_the_host_as_people_write_it_reaches_the_server(make_server: Callable[..., LiveServer], upstream: ScriptedUpstream,
                                                         written: str) -> None:
    """``host=".../v1"`` (the OpenAI SDK's base_url) was a bare 404, ``host="127.0.0.1:8765"``
    (no scheme) "unreachable" while the server was up: both name the same server."""
    upstream.handler = restaurant_llm
    server = make_server()
    host = written.format(url=server.url, bare=server.url.removeprefix("http://"))
    with Memlane(api_key="any", host=host) as client:
        assert client.host == server.url
        client.memory.add("Likes tea", user_id="alice", infer=False)
        assert [r["memory"] for r in client.memory.get_all(user_id="alice")["results"]] == ["Likes tea"]
        resp = client.chat.completions.create(messages=[{"role": "user", "content": "hi"}], model="m", user_id="alice")
        assert resp.choices[0].message.content


@pytest.mark.parametrize("host,says", [
    ("ftp://127.0.0.1:8765", "starts with http:// or https://, not ftp://"),
    ("http://127.0.0.1:99999", "Port out of range"),
    ("http://127.0.0.1:8765/?x=1", "is not a server address: write it as http://HOST:PORT"),
    ("http://", "is not a server address"),
])
def test_a_host_that_cannot_be_a_server_says_what_is_wrong(host: str, says: str) -> None:
    from memlane import ConfigError

    with pytest.raises(ConfigError, match=re.escape(says)):
        Memlane(api_key="any", host=host)
