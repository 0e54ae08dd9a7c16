"""``AsyncMemlane`` mirrors ``Memlane`` with ``await`` and ``async for``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest

from memlane import AsyncMemlane, MemlaneChatCompletion
from memlane.testing import Reply, ScriptedUpstream
from tests.scenarios import client_config, restaurant_llm


def test_async_restaurant_scenario_and_streaming(tmp_path: Path, upstream: ScriptedUpstream) -> None:
    def script(req):  # type: ignore[no-untyped-def]
        # by rule, not by queue: the background learner's calls interleave with the chats
        if req.stage == "chat" and req.last_user_text == "stream please":
            return Reply.text("Streaming works.")
        if req.stage == "chat" and req.last_user_text == "x":
            return Reply.error(429, "slow down")
        return restaurant_llm(req)

    upstream.handler = script

    async def scenario() -> None:
        async with AsyncMemlane(config=client_config(tmp_path / "a.db", upstream)) as client:
            first = await client.chat.completions.create(
                messages=[{"role": "user", "content": "I love Indian food but I'm allergic to cheese."}], model="m", user_id="alice")
            assert isinstance(first, MemlaneChatCompletion)
            assert await client.flush(timeout=30)
            resp = await client.chat.completions.create(
                messages=[{"role": "user", "content": "Suggest dinner options in San Francisco."}], model="m", user_id="alice",
                include_memories=True)
            assert {m.memory for m in resp.metadata.memories} == {"Is allergic to cheese", "Loves Indian food"}

            stream = await client.chat.completions.create(messages=[{"role": "user", "content": "stream please"}], model="m",
                                                          user_id="alice", stream=True, include_memories=True)
            assert isinstance(stream, openai.AsyncStream)
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert text == "Streaming works."
            assert stream.metadata is not None
            assert await client.flush(timeout=30)
            assert "Streaming works." in upstream.chat_requests("extract")[-1].said_by("assistant")

            with pytest.raises(openai.RateLimitError):
                await client.chat.completions.create(messages=[{"role": "user", "content": "x"}], model="m", user_id="alice")

    asyncio.run(scenario())
