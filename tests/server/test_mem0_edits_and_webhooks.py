"""mem0ai's own MemoryClient, unchanged, for the Platform's batch edits, feedback and webhook
management against memlane: each method, its answer in mem0's shape, its errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from memlane.server.keys import KeyStore
from memlane.testing import ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import restaurant_llm


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys.db")


@pytest.fixture
def server(make_server: Callable[..., LiveServer], keys: KeyStore, upstream: ScriptedUpstream) -> LiveServer:
    upstream.handler = restaurant_llm
    return make_server(keys=keys)


@pytest.fixture
def client_for(server: LiveServer, keys: KeyStore, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Any]:
    monkeypatch.setenv("MEM0_TELEMETRY", "False")
    from mem0 import MemoryClient

    def make(project: str) -> Any:
        key, _ = keys.create(project)
        return MemoryClient(api_key=key, host=server.url)

    return make


def test_batch_update_and_batch_delete(client_for: Callable[[str], Any]) -> None:
    client = client_for("acme")
    ids = [client.add(t, user_id="alice", infer=False)["results"][0]["id"] for t in ("Likes tea", "Likes coffee", "Has a cat")]
    done = client.batch_update([{"memory_id": ids[0], "text": "Likes green tea"}, {"memory_id": ids[1], "metadata": {"kind": "drink"}}])
    assert done["message"] == "Successfully updated 2 memories"
    assert client.get(ids[0])["memory"] == "Likes green tea" and client.get(ids[1])["metadata"] == {"kind": "drink"}
    assert [e["event"] for e in client.history(ids[0])] == ["ADD", "UPDATE"]
    assert client.batch_delete([{"memory_id": ids[0]}, {"memory_id": ids[1]}])["message"] == "Successfully deleted 2 memories"
    assert [m["memory"] for m in client.get_all(filters={"user_id": "alice"})["results"]] == ["Has a cat"]


def test_a_bad_batch_is_refused_whole_with_the_reason(client_for: Callable[[str], Any]) -> None:
    client = client_for("acme")
    memory_id = client.add("Likes tea", user_id="alice", infer=False)["results"][0]["id"]
    with pytest.raises(Exception, match="is not a memory here") as info:
        client.batch_update([{"memory_id": memory_id, "text": "Likes green tea"}, {"memory_id": "not-a-memory", "text": "x"}])
    assert "memories[1].memory_id 'not-a-memory'" in str(info.value)
    assert client.get(memory_id)["memory"] == "Likes tea", "all or nothing"
    with pytest.raises(Exception, match="at most 1000"):
        client.batch_delete([{"memory_id": f"m{i}"} for i in range(1001)])
    assert client.get(memory_id)["memory"] == "Likes tea"


def test_another_projects_memories_are_unknown_ids_to_a_batch(client_for: Callable[[str], Any]) -> None:
    acme, other = client_for("acme"), client_for("other")
    memory_id = acme.add("Likes tea", user_id="alice", infer=False)["results"][0]["id"]
    with pytest.raises(Exception, match="is not a memory here"):
        other.batch_delete([{"memory_id": memory_id}])
    assert acme.get(memory_id)["memory"] == "Likes tea"


def test_feedback(client_for: Callable[[str], Any], server: LiveServer, keys: KeyStore) -> None:
    client = client_for("acme")
    memory_id = client.add("Likes tea", user_id="alice", infer=False)["results"][0]["id"]
    given = client.feedback(memory_id, feedback="negative", feedback_reason="she said coffee")
    assert (given["feedback"], given["feedback_reason"], given["memory_id"]) == ("NEGATIVE", "she said coffee", memory_id)
    client.feedback(memory_id, feedback="POSITIVE")
    key, _ = keys.create("acme")
    listed = httpx.get(f"{server.url}/v1/memories/{memory_id}/feedback", headers={"Authorization": f"Token {key}"}).json()
    assert [f["feedback"] for f in listed] == ["NEGATIVE", "POSITIVE"]
    with pytest.raises(Exception, match="not found"):
        client.feedback("no-such-memory", feedback="POSITIVE")
    refused = httpx.post(f"{server.url}/v1/feedback/", json={"memory_id": memory_id, "feedback": "MEH"},
                         headers={"Authorization": f"Token {key}"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "feedback"


def test_webhook_management(client_for: Callable[[str], Any]) -> None:
    client = client_for("acme")
    project = client.project_id
    made = client.create_webhook(url="https://93.184.216.34/hooks/memlane", name="Memory Logger", project_id=project,
                                 event_types=["memory_add"])
    assert {k: made[k] for k in ("name", "url", "event_types", "is_active", "project")} == {
        "name": "Memory Logger", "url": "https://93.184.216.34/hooks/memlane", "event_types": ["memory_add"], "is_active": True,
        "project": "acme"}
    assert made["webhook_id"].startswith("wh_") and made["secret"].startswith("whsec_")
    (listed,) = client.get_webhooks(project_id=project)
    assert listed["webhook_id"] == made["webhook_id"] and listed["deliveries"] == {"pending": 0, "delivered": 0, "dead": 0}
    changed = client.update_webhook(webhook_id=made["webhook_id"], name="Updated Logger", event_types=["memory_update", "memory_add"])
    assert changed["message"] == "Webhook updated successfully"
    assert (changed["name"], changed["event_types"]) == ("Updated Logger", ["memory_update", "memory_add"])
    other = client_for("other")
    assert other.get_webhooks(project_id=other.project_id) == [], "a project sees only its own webhooks"
    with pytest.raises(Exception, match="not this key's project"):
        other.get_webhooks(project_id=project)
    with pytest.raises(Exception, match="not found"):
        other.delete_webhook(webhook_id=made["webhook_id"])
    assert client.delete_webhook(webhook_id=made["webhook_id"]) == {"message": "Webhook deleted successfully"}
    assert client.get_webhooks(project_id=project) == []
    with pytest.raises(Exception, match="memlane sends memory_add, memory_update, memory_delete"):
        client.create_webhook(url="https://93.184.216.34/x", name="x", project_id=project, event_types=["memory_categorize"])
