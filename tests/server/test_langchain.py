"""LangChain's ChatOpenAI, pointed at memlane with base_url, remembers across calls."""

from __future__ import annotations

import time

import httpx
from langchain_openai import ChatOpenAI

from memlane.testing import ScriptedUpstream
from memlane.testing.live_server import LiveServer


def test_chat_openai_through_memlane(server: LiveServer, upstream: ScriptedUpstream) -> None:
    llm = ChatOpenAI(base_url=server.url + "/v1", api_key="unused", model="gpt-4.1-nano", max_retries=0,
                     extra_body={"user_id": "alice"})
    first = llm.invoke("I love Indian food but I'm allergic to cheese.")
    assert first.content == "Noted! Here is my suggestion."
    deadline = time.monotonic() + 30
    while len(httpx.get(server.url + "/v1/memories", params={"user_id": "alice"}).json()["results"]) < 2:
        assert time.monotonic() < deadline, "nothing learnt"
        time.sleep(0.05)
    upstream.requests.clear()
    chunks = [c.content for c in llm.stream("Suggest dinner options in San Francisco.")]
    assert "".join(chunks) == "Noted! Here is my suggestion."
    sent = upstream.chat_requests("chat")[0].messages
    assert any("Is allergic to cheese" in m["content"] for m in sent if m["role"] == "system")
