"""A hanging upstream costs bounded time: reads time out, the server does not retry under the
caller's own retries, and a caller who gives up cancels the upstream request it was waiting on."""

from __future__ import annotations

import time
from typing import Callable

import httpx
import openai
import pytest

from memlane.testing import Reply, ScriptedUpstream
from memlane.testing.live_server import LiveServer
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
def test_callers_who_give_up_cancel_their_upstream_requests(make_server: Callable[..., LiveServer], upstream: ScriptedUpstream, stream: bool) -> None:
    server = make_server()
    upstream.handler = lambda req: Reply.text("too late", delay=60)

    def impatient() -> None:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(server.url + "/v1/chat/completions", json={**HI, "stream": stream}, timeout=2)

    assert run_in_threads(impatient, 10, 30) == []
    def all_abandoned() -> bool:
        chats = upstream.chat_requests("chat")
        return len(chats) == 10 and all(r.abandoned for r in chats)

    assert wait_until(all_abandoned, 5), [r.abandoned for r in upstream.chat_requests("chat")]
    assert httpx.get(server.url + "/healthz").status_code == 200
