"""Graceful shutdown drains the learning outbox before the process ends."""

from __future__ import annotations

from pathlib import Path

import openai

from memlane import Memory
from memlane.server.app import create_app
from memlane.server.keys import KeyStore
from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import client_config, restaurant_llm


def test_shutdown_waits_for_the_outbox(tmp_path: Path, upstream: ScriptedUpstream) -> None:
    def slow_learning(req: ScriptedRequest) -> Reply:
        reply = restaurant_llm(req)
        if req.stage == "extract":
            reply.delay = 1.0  # still learning when the server is told to stop
        return reply

    upstream.handler = slow_learning
    config = client_config(tmp_path / "drain.db", upstream)
    server = LiveServer(create_app(config, keys=KeyStore(tmp_path / "keys.db"), drain_seconds=30)).start()
    sdk = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "I love Indian food"}], extra_body={"user_id": "alice"})
    server.stop()
    with Memory(config) as memory:
        assert memory.store.outbox.stats()["pending"] == 0
        assert [r["memory"] for r in memory.get_all(user_id="alice")["results"]] == ["Loves Indian food"]
