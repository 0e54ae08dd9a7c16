"""Webhooks through ``memlane serve``: a real receiver on loopback (so these servers set
``server.webhooks.allow_private``), mem0's own ``MemoryClient`` making the changes. Delivery is
at least once with an idempotency key, retried with backoff, signed, survives a restart, and
never reaches a loopback, private or link-local address unless allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from memlane import Memory
from memlane.config import load_config
from memlane.engine.webhooks import verify_signature
from memlane.server.projects import project_config
from memlane.server.keys import KeyStore
from memlane.testing import ScriptedUpstream, WebhookReceiver
from memlane.testing.live_server import LiveServer
from tests.scenarios import client_config, restaurant_llm
from tests.threads import wait_until

#: quick retries, so a test waits milliseconds where production waits seconds
QUICK = {"allow_private": True, "poll_seconds": 0.02, "retry_base_seconds": 0.01, "retry_max_seconds": 0.05}
EVENTS = ["memory_add", "memory_update", "memory_delete"]


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys.db")


@pytest.fixture
def mem0(monkeypatch: pytest.MonkeyPatch, upstream: ScriptedUpstream) -> Callable[..., Any]:
    """mem0ai's MemoryClient, unchanged, for a server and a key."""
    monkeypatch.setenv("MEM0_TELEMETRY", "False")
    from mem0 import MemoryClient

    upstream.handler = restaurant_llm
    return lambda server, key: MemoryClient(api_key=key, host=server.url)


def deliveries(server: LiveServer, key: str) -> list[dict[str, Any]]:
    answer = httpx.get(server.url + "/v1/webhooks/deliveries", params={"limit": 100}, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def test_a_receiver_that_fails_three_times_gets_each_event_exactly_once(make_server: Callable[..., LiveServer], keys: KeyStore,
                                                                        mem0: Callable[..., Any]) -> None:
    key, _ = keys.create("acme")
    server = make_server(keys=keys, server={"webhooks": QUICK})
    client = mem0(server, key)
    with WebhookReceiver(fail_first=3) as receiver:
        hook = client.create_webhook(url=receiver.url, name="crm", project_id=client.project_id, event_types=EVENTS)
        memory_id = client.add("Likes tea", user_id="alice", infer=False)["results"][0]["id"]
        client.update(memory_id, text="Likes green tea")
        client.delete(memory_id)
        assert wait_until(lambda: all(d["status"] == "delivered" for d in deliveries(server, key)) and len(receiver.accepted) == 3, 30)
    assert [r.answered for r in receiver.requests] == [500, 500, 500, 200, 200, 200], "three failures, then each event once"
    assert receiver.duplicates == 0
    assert sorted(p["event_type"] for p in receiver.accepted.values()) == sorted(EVENTS)
    assert {p["event_details"]["event"]: p["event_details"]["data"]["memory"] for p in receiver.accepted.values()} == {
        "ADD": "Likes tea", "UPDATE": "Likes green tea", "DELETE": "Likes green tea"}
    for request in receiver.requests:
        assert verify_signature(hook["secret"], request.body, request.headers["X-Memlane-Signature"])
        assert not verify_signature(hook["secret"], request.body + b" ", request.headers["X-Memlane-Signature"])
        assert not verify_signature("whsec_another", request.body, request.headers["X-Memlane-Signature"])
        assert request.headers["Idempotency-Key"] == request.payload["idempotency_key"] == request.headers["X-Memlane-Delivery"]
        assert request.headers["X-Memlane-Event"] == request.payload["event_type"] and request.headers["X-Memlane-Project"] == "acme"
    retried = [d for d in deliveries(server, key) if d["attempts"] > 1]
    assert sum(d["attempts"] - 1 for d in retried) == 3
    assert all([a["status_code"] for a in d["attempt_log"]][-1] == 200 and 500 in [a["status_code"] for a in d["attempt_log"]]
               for d in retried), "each attempt is visible, with its answer"


def test_a_server_restart_loses_no_pending_delivery(make_server: Callable[..., LiveServer], keys: KeyStore, mem0: Callable[..., Any],
                                                    tmp_path: Path, upstream: ScriptedUpstream) -> None:
    key, _ = keys.create("acme")
    patient = {"webhooks": {**QUICK, "max_attempts": 100_000}}
    with WebhookReceiver(fail_first=10**9) as receiver:  # down until the restart
        first = make_server(keys=keys, server=patient)
        client = mem0(first, key)
        client.create_webhook(url=receiver.url, name="crm", project_id=client.project_id, event_types=["memory_add"])
        for text in ("Likes tea", "Lives in Lisbon", "Has a cat"):
            client.add(text, user_id="alice", infer=False)
        assert wait_until(lambda: len(receiver.requests) >= 6, 30), "it kept trying while the receiver was down"
        first.stop()
        with Memory(project_config(load_config(client_config(tmp_path / "server.db", upstream)), "acme")) as store:
            waiting = store.webhook_deliveries(status="pending")
        assert len(waiting) == 3 and all(d["attempts"] >= 1 for d in waiting), "queued in the store, tried, still pending"
        receiver.fail_first = 0  # the receiver is back; nothing is sent to it while no server runs
        tried = len(receiver.requests)
        second = make_server(keys=keys, server=patient)  # the same store; no request reaches project acme
        assert wait_until(lambda: len(receiver.accepted) == 3, 30)
        assert len(receiver.requests) == tried + 3 and receiver.duplicates == 0
    assert sorted(p["event_details"]["data"]["memory"] for p in receiver.accepted.values()) == ["Has a cat", "Likes tea", "Lives in Lisbon"]
    assert {d["status"] for d in deliveries(second, key)} == {"delivered"}


@pytest.mark.parametrize("url, reason", [
    ("http://127.0.0.1:8080/hook", "127.0.0.1 is a loopback address"),
    ("http://10.1.2.3/hook", "10.1.2.3 is a private address"),
    ("http://192.168.0.10/hook", "a private address"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://[::1]:8080/hook", "::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]/hook", "a loopback address"),
    ("http://localhost:9999/hook", "localhost resolves to 127.0.0.1, a loopback address"),
    ("ftp://93.184.216.34/hook", "a webhook must be an http:// or https:// URL (got scheme 'ftp')"),
    ("file:///etc/passwd", "a webhook must be an http:// or https:// URL (got scheme 'file')"),
    ("javascript:alert(1)", "a webhook must be an http:// or https:// URL"),
    ("http:///no-host", "has no host"),
])
def test_loopback_private_and_link_local_targets_and_other_schemes_are_refused(server: LiveServer, url: str, reason: str) -> None:
    api = httpx.Client(base_url=server.url)
    refused = api.post("/v1/webhooks", json={"url": url, "name": "x"})
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert reason in error["message"] and error["param"] == "url", error
    made = api.post("/v1/webhooks", json={"url": "https://93.184.216.34/hook", "name": "ok"})
    assert made.status_code == 200, made.text
    hook = made.json()
    changed = api.put(f"/v1/webhooks/{hook['webhook_id']}", json={"url": url})
    assert changed.status_code == 400 and reason in changed.json()["error"]["message"]
    assert api.get(f"/v1/webhooks/{hook['webhook_id']}").json()["url"] == "https://93.184.216.34/hook", "the refused update changed nothing"
    assert all(h["url"] != url for h in api.get("/v1/webhooks").json())


def test_each_delivery_checks_its_target_again(make_server: Callable[..., LiveServer], keys: KeyStore, mem0: Callable[..., Any]) -> None:
    """A webhook made while private targets were allowed gets nothing once they are not: the
    address is checked before every attempt, not only when the webhook was made."""
    key, _ = keys.create("acme")
    with WebhookReceiver() as receiver:
        allowing = make_server(keys=keys, server={"webhooks": QUICK})
        client = mem0(allowing, key)
        client.create_webhook(url=receiver.url, name="inside", project_id=client.project_id, event_types=["memory_add"])
        allowing.stop()
        strict = make_server(keys=keys, server={"webhooks": {**QUICK, "allow_private": False, "max_attempts": 2}})
        mem0(strict, key).add("Likes tea", user_id="alice", infer=False)
        assert wait_until(lambda: [d["status"] for d in deliveries(strict, key)] == ["dead"], 30)
    (dead,) = deliveries(strict, key)
    assert "127.0.0.1 is a loopback address" in dead["last_error"] and len(dead["attempt_log"]) == 2
    assert receiver.requests == []


def test_mem0s_client_is_told_why_a_target_is_refused(make_server: Callable[..., LiveServer], keys: KeyStore,
                                                       mem0: Callable[..., Any]) -> None:
    key, _ = keys.create("acme")
    client = mem0(make_server(keys=keys), key)
    with pytest.raises(Exception, match="loopback address"):
        client.create_webhook(url="http://localhost:8000/hook", name="x", project_id=client.project_id, event_types=["memory_add"])
    assert client.get_webhooks(project_id=client.project_id) == []


def test_deliveries_and_their_attempts_are_in_the_inspector(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(server={"webhooks": QUICK})
    api = httpx.Client(base_url=server.url)
    with WebhookReceiver(fail_first=1) as receiver:
        hook = api.post("/v1/webhooks", json={"url": receiver.url, "name": "crm"}).json()
        memory_id = api.post("/v1/memories", json={"messages": "Likes tea", "user_id": "alice", "infer": False}).json()["results"][0]["id"]
        assert wait_until(lambda: len(receiver.accepted) == 1, 30)
    page = api.get("/ui/webhooks").text
    assert "crm" in page and hook["webhook_id"] in page and "Likes tea" in page and "delivered" in page
    (delivery,) = api.get(f"/v1/webhooks/{hook['webhook_id']}/deliveries").json()
    one = api.get(f"/ui/webhooks/deliveries/{delivery['id']}").text
    assert "HTTP 500" in one and "HTTP 200" in one and "memory_add" in one
    api.post(f"/v1/memories/{memory_id}/feedback", json={"feedback": "NEGATIVE", "feedback_reason": "she said coffee"})
    shown = api.get(f"/ui/memories/{memory_id}").text
    assert "NEGATIVE" in shown and "she said coffee" in shown
