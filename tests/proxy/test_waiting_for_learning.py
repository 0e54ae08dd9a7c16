"""``client.flush()`` waits for learning in both modes and says False when an exchange went dead
(product.md section 11). mem0's own sample, with ``flush()`` between its two calls as
docs/migrating-from-mem0.md advises, recalls the first call's fact even when extraction is slow."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Iterator

import pytest

from memlane import AsyncMemlane, Memlane
from memlane.server.app import create_app
from memlane.server.keys import KeyStore
from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import client_config, restaurant_llm

MEM0_SAMPLE = "I love Indian food but I cannot eat pizza since allergic to cheese."
RESTAURANTS = "Suggest restaurants in San Francisco to eat."


def slow_extraction(req: ScriptedRequest) -> Reply:
    """The memory model takes two seconds to extract facts (a real one often does)."""
    reply = restaurant_llm(req)
    if req.stage == "extract":
        reply.delay = 2.0
    return reply


def no_memory_model(req: ScriptedRequest) -> Reply:
    """The chat model answers; the memory model does not exist (an error no retry can fix)."""
    if req.stage == "extract":
        return Reply.error(404, "The model 'gpt-4o-mini' does not exist", type="invalid_request_error", code="model_not_found")
    return Reply.text("Noted!")


@pytest.fixture
def server(tmp_path: Path, upstream: ScriptedUpstream) -> Iterator[tuple[str, str]]:
    keys = KeyStore(tmp_path / "keys.db")
    key, _ = keys.create("acme")
    with LiveServer(create_app(client_config(tmp_path / "server.db", upstream), keys=keys, drain_seconds=5)) as live:
        yield live.url, key


def mem0_sample(client: Memlane) -> tuple[bool, float, str]:
    """mem0's "conversation that remembers", with flush() between the calls; (flushed, seconds, prompt)."""
    user_id = "alice"
    client.chat.completions.create(messages=[{"role": "user", "content": MEM0_SAMPLE}], model="gpt-4o-mini", user_id=user_id)
    started = time.monotonic()
    flushed = client.flush(timeout=30)
    took = time.monotonic() - started
    client.chat.completions.create(messages=[{"role": "user", "content": RESTAURANTS}], model="gpt-4o-mini", user_id=user_id)
    return flushed, took, str(client.memory.search("cheese", user_id=user_id)["results"])


def test_hosted_flush_waits_for_slow_learning(server: tuple[str, str], upstream: ScriptedUpstream) -> None:
    upstream.handler = slow_extraction
    url, key = server
    with Memlane(api_key=key, host=url) as client:
        flushed, took, found = mem0_sample(client)
        assert flushed is True and took >= 1.5, "flush waited for the extraction"
        assert "Is allergic to cheese" in found
        prompt = upstream.chat_requests("chat")[-1].messages[0]["content"]
        assert "Is allergic to cheese" in prompt, "the second call recalled what the first taught"


def test_embedded_flush_waits_for_slow_learning(tmp_path: Path, upstream: ScriptedUpstream) -> None:
    upstream.handler = slow_extraction
    with Memlane(config=client_config(tmp_path / "e.db", upstream)) as client:
        flushed, took, found = mem0_sample(client)
        assert flushed is True and "Is allergic to cheese" in found


def test_async_hosted_flush_waits_for_a_stream_s_exchange(server: tuple[str, str], upstream: ScriptedUpstream) -> None:
    upstream.handler = slow_extraction
    url, key = server

    async def run() -> None:
        async with AsyncMemlane(api_key=key, host=url) as client:
            stream = await client.chat.completions.create(messages=[{"role": "user", "content": MEM0_SAMPLE}], model="m",
                                                          user_id="alice", stream=True)
            async for _ in stream:
                pass
            assert stream.metadata is not None and stream.metadata.exchange_id, "the first chunk named the exchange"
            assert await client.flush(timeout=30) is True
            found = await client.memory.search("cheese", user_id="alice")
            assert "Is allergic to cheese" in str(found["results"])

    asyncio.run(run())


@pytest.mark.parametrize("mode", ["embedded", "hosted"])
def test_flush_is_false_when_an_exchange_went_dead(mode: str, server: tuple[str, str], tmp_path: Path, upstream: ScriptedUpstream) -> None:
    upstream.handler = no_memory_model
    url, key = server
    client = Memlane(api_key=key, host=url) if mode == "hosted" else Memlane(config=client_config(tmp_path / "e.db", upstream))
    with client:
        answer = client.chat.completions.create(messages=[{"role": "user", "content": MEM0_SAMPLE}], model="gpt-4o-mini", user_id="alice")
        assert answer.metadata is not None and answer.metadata.exchange_id
        assert client.flush(timeout=30) is False
        assert client.flush(timeout=30) is True, "told once; nothing new since"


@pytest.mark.parametrize("mode", ["embedded", "hosted"])
def test_flush_is_false_when_the_timeout_runs_out_first(mode: str, server: tuple[str, str], tmp_path: Path,
                                                        upstream: ScriptedUpstream) -> None:
    upstream.handler = slow_extraction
    url, key = server
    client = Memlane(api_key=key, host=url) if mode == "hosted" else Memlane(config=client_config(tmp_path / "e.db", upstream))
    with client:
        client.chat.completions.create(messages=[{"role": "user", "content": MEM0_SAMPLE}], model="m", user_id="alice")
        started = time.monotonic()
        assert client.flush(timeout=0.3) is False
        assert time.monotonic() - started < 1.5
        assert client.flush(timeout=30) is True


def test_a_kept_exchange_resent_after_a_lost_answer_is_learnt_once(tmp_path: Path, server: tuple[str, str],
                                                                   upstream: ScriptedUpstream) -> None:
    """The hosted client's resync sends each kept exchange's own id: sending it again (its
    answer was lost, the file not yet rewritten) gets the same exchange, learnt from once."""
    upstream.handler = restaurant_llm
    url, key = server
    with Memlane(api_key=key, host=url) as client:
        kept_file = client._backend.outbox  # the local file of exchanges kept while the server was down
        kept_file.append({"scope": {"user_id": "erin"}, "messages": [{"role": "user", "content": MEM0_SAMPLE}],
                              "metadata": {}, "model": "m", "id": "kept-exchange-1"})
        kept = kept_file.items()
        assert client.sync() == 1
        kept_file.replace(kept)  # as if the answer to the first send was lost
        assert client.sync() == 1
        assert client.flush(timeout=30) is True
        assert len(upstream.chat_requests("extract")) == 1
        assert len(client.memory.get_all(user_id="erin")["results"]) == 2


def test_a_fallback_chat_keeps_its_exchange_with_an_id(tmp_path: Path, upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    with Memlane(api_key="k", host="http://127.0.0.1:9", fallback={"base_url": upstream.url, "api_key": "k"}) as client:
        client.chat.completions.create(messages=[{"role": "user", "content": "hello"}], model="m", user_id="alice")
        (kept,) = client._backend.outbox.items()
        assert isinstance(kept["id"], str) and len(kept["id"]) == 36
        assert client.flush(timeout=1) is False, "still kept locally"


def test_a_full_outbox_never_fails_a_chat_and_the_dropped_exchange_is_counted(tmp_path: Path, upstream: ScriptedUpstream) -> None:
    def extraction_down(req: ScriptedRequest) -> Reply:
        return Reply.error(503, "overloaded") if req.stage == "extract" else Reply.text("Noted!")

    upstream.handler = extraction_down  # a retry waits a minute: the first exchange stays queued
    config = client_config(tmp_path / "e.db", upstream, outbox={"max_queued": 1, "retry_base_seconds": 60, "exit_flush_seconds": 0})
    with Memlane(config=config) as client:
        first = client.chat.completions.create(messages=[{"role": "user", "content": MEM0_SAMPLE}], model="m", user_id="alice")
        second = client.chat.completions.create(messages=[{"role": "user", "content": RESTAURANTS}], model="m", user_id="alice")
        assert first.metadata is not None and first.metadata.exchange_id
        assert second.choices[0].message.content == "Noted!" and second.metadata is None, "answered; nothing queued, no id"
        assert client.stats.exchanges_dropped == 1 and client.outbox_status()["exchanges_dropped"] == 1
        assert client.outbox_status()["pending"] == 1


@pytest.mark.parametrize("mode", ["embedded", "hosted"])
def test_a_stream_closed_early_is_not_waited_for(mode: str, server: tuple[str, str], tmp_path: Path, upstream: ScriptedUpstream) -> None:
    """It is not learnt from (its answer was never complete), so flush has nothing to wait for."""
    upstream.handler = restaurant_llm
    url, key = server
    client = Memlane(api_key=key, host=url) if mode == "hosted" else Memlane(config=client_config(tmp_path / "e.db", upstream))
    with client:
        stream = client.chat.completions.create(messages=[{"role": "user", "content": MEM0_SAMPLE}], model="m", user_id="alice",
                                                stream=True)
        next(iter(stream))
        stream.close()
        assert stream.metadata is not None and stream.metadata.exchange_id
        assert client.flush(timeout=10) is True
