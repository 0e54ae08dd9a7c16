"""A hanging upstream costs bounded time: reads time out, the server does not retry under the
caller's own retries, and a caller who gives up cancels the upstream request it was waiting on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import httpx
import openai
import pytest

from memlane.server.app import create_app
from memlane.server.keys import KeyStore
from memlane.testing import Reply, ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import client_config, restaurant_llm
from tests.threads import run_in_threads, wait_until

HI = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_a_hanging_upstream_is_a_504_after_the_read_timeout_tried_once(make_server: Callable[..., LiveServer], upstream: ScriptedUpstream) -> None:
    server = make_server(upstream={"base_url": upstream.url, "api_key": "k", "timeout": 1})  # max_retries left to the default
    upstream.handler = lambda req: Reply.text("too late", delay=30)
    sdk = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        sdk.chat.completions.create(**HI, extra_body={"user_id": "alice"})
    assert info.value.status_code == 504 and info.value.body["code"] == "upstream_timeout"
    assert time.monotonic() - started < 5
    assert len(upstream.chat_requests("chat")) == 1, "the server leaves retries to the caller's SDK"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_callers_who_give_up_cancel_their_upstream_requests(tmp_path: Path, stream: bool) -> None:
    """As the reliability probe saw it: a server that chatted and learnt before, an upstream that
    then hangs, 10 callers who leave. Each of their requests is closed at the upstream, and no
    connection stays open: not even the memory LLM's kept-alive one from the learner's earlier
    extraction (the "1 of 10" the probe counted), which the learner closes when it goes idle. Its own upstream: the
    session's holds idle connections of earlier tests' clients."""
    with ScriptedUpstream() as upstream:
        app = create_app(client_config(tmp_path / "server.db", upstream), keys=KeyStore(tmp_path / "keys.db"), drain_seconds=5)
        with LiveServer(app) as server:
            callers_leave(server, upstream, stream)


def callers_leave(server: LiveServer, upstream: ScriptedUpstream, stream: bool) -> None:
    upstream.handler = restaurant_llm
    sdk = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "I love Indian food"}], extra_body={"user_id": "alice"})
    learnt = lambda: httpx.get(server.url + "/v1/memories", params={"user_id": "alice"}).json()["results"]  # noqa: E731
    assert wait_until(learnt, 10) and upstream.chat_requests("extract"), "learnt from the first chat"
    upstream.clear()
    upstream.handler = lambda req: Reply.text("too late", delay=60)

    def impatient() -> None:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(server.url + "/v1/chat/completions", json={**HI, "stream": stream, "user_id": "alice"}, timeout=2)

    assert run_in_threads(impatient, 10, 30) == []

    def all_let_go() -> bool:
        chats = upstream.chat_requests("chat")
        return len(chats) == 10 and all(r.abandoned for r in chats) and not any(c.busy for c in upstream.open_connections())

    assert wait_until(all_let_go, 5), ([r.abandoned for r in upstream.chat_requests("chat")], upstream.open_connections())
    assert wait_until(lambda: upstream.open_connections() == [], 5), \
        f"no connection stays open (the idle learner let the memory LLM's go too): {upstream.open_connections()}"
    assert httpx.get(server.url + "/healthz").status_code == 200
