"""The hosted client's batch edits, feedback and webhooks: the same method names, arguments,
answers and errors as the embedded engine's, over the server's REST API."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from memlane import AsyncMemlane, Memlane
from memlane.errors import NotFoundError, ValidationError
from memlane.server.app import create_app
from memlane.server.keys import KeyStore
from memlane.testing import ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import client_config, restaurant_llm


@pytest.fixture
def both(tmp_path: Path, upstream: ScriptedUpstream) -> Iterator[list[Memlane]]:
    upstream.handler = restaurant_llm
    keys = KeyStore(tmp_path / "keys.db")
    key, _ = keys.create("acme")
    with LiveServer(create_app(client_config(tmp_path / "server.db", upstream), keys=keys, drain_seconds=5)) as server:
        with Memlane(config=client_config(tmp_path / "e.db", upstream)) as embedded, Memlane(api_key=key, host=server.url) as hosted:
            yield [embedded, hosted]


def test_batch_edits_and_feedback_in_both_modes(both: list[Memlane]) -> None:
    for client in both:
        memory = client.memory
        ids = [memory.add(t, user_id="alice", infer=False)["results"][0]["id"] for t in ("Likes tea", "Likes coffee")]
        done = memory.batch_update([{"memory_id": ids[0], "text": "Likes green tea"}, {"memory_id": ids[1], "metadata": {"k": 1}}])
        assert [r["event"] for r in done["results"]] == ["UPDATE", "UPDATE"], client.mode
        with pytest.raises(ValidationError, match=r"memories\[0\]\.memory_id 'nope' is not a memory here"):
            memory.batch_delete([{"memory_id": "nope"}, {"memory_id": ids[0]}])
        assert memory.feedback(ids[0], "VERY_NEGATIVE", "wrong")["feedback"] == "VERY_NEGATIVE"
        assert [f["feedback_reason"] for f in memory.get_feedback(ids[0])] == ["wrong"]
        with pytest.raises(ValidationError, match="feedback must be one of"):
            memory.feedback(ids[0], "MEH")
        with pytest.raises(NotFoundError):
            memory.get_feedback("no-such-memory")
        assert memory.batch_delete([{"memory_id": i} for i in ids])["message"] == "Successfully deleted 2 memories"
        assert memory.get_all(user_id="alice")["results"] == [], client.mode


def test_webhooks_in_both_modes(both: list[Memlane]) -> None:
    for client in both:
        memory = client.memory
        hook = memory.create_webhook("https://93.184.216.34/hook", "crm", ["memory_add"])
        memory.add("Likes tea", user_id="alice", infer=False)
        assert [h["webhook_id"] for h in memory.get_webhooks()] == [hook["webhook_id"]], client.mode
        (queued,) = memory.webhook_deliveries(hook["webhook_id"])
        assert queued["payload"]["event_details"]["data"] == {"memory": "Likes tea"} and queued["status"] == "pending"
        assert memory.update_webhook(hook["webhook_id"], is_active=False)["is_active"] is False
        with pytest.raises(ValidationError, match="loopback"):
            memory.create_webhook("http://127.0.0.1/hook")
        assert memory.delete_webhook(hook["webhook_id"]) == {"message": "Webhook deleted successfully"}
        assert memory.get_webhooks() == []


def test_the_async_hosted_client_has_them_too(tmp_path: Path, upstream: ScriptedUpstream) -> None:
    import asyncio

    keys = KeyStore(tmp_path / "keys.db")
    key, _ = keys.create("acme")
    with LiveServer(create_app(client_config(tmp_path / "server.db", upstream), keys=keys, drain_seconds=5)) as server:
        async def run() -> None:
            async with AsyncMemlane(api_key=key, host=server.url) as client:
                added = await client.memory.add("Likes tea", user_id="alice", infer=False)
                memory_id = added["results"][0]["id"]
                await client.memory.batch_update([{"memory_id": memory_id, "text": "Likes mint tea"}])
                assert (await client.memory.get(memory_id))["memory"] == "Likes mint tea"
                assert (await client.memory.feedback(memory_id, "POSITIVE"))["feedback"] == "POSITIVE"

        asyncio.run(run())
