"""Waiting for learning through the server (product.md section 11), and the exchanges route's
bounds and replays: what a plain OpenAI SDK user (any language) can do with HTTP alone.

Every chat with a scope names its exchange in ``metadata.exchange_id`` (a stream: on its first
chunk); ``GET /v1/exchanges/{id}?wait=SECONDS`` answers ``queued``, ``learnt`` or ``dead``,
waiting while it is queued; ``POST /v1/exchanges`` is idempotent and bounded per project."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import openai
import pytest

from memlane.server.keys import KeyStore
from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream, openai_spec
from memlane.testing.live_server import LiveServer
from tests.scenarios import SPEC_PATH, restaurant_llm

SEED = "I love Indian food but I'm allergic to cheese."


def slow_extraction(seconds: float) -> Callable[[ScriptedRequest], Reply]:
    """The restaurant model, whose fact extraction takes ``seconds``."""
    def handler(req: ScriptedRequest) -> Reply:
        reply = restaurant_llm(req)
        if req.stage == "extract":
            reply.delay = seconds
        return reply

    return handler


def exchange(text: str = SEED, user: str = "alice") -> dict[str, Any]:
    return {"scope": {"user_id": user}, "messages": [{"role": "user", "content": text}], "model": "m"}


@pytest.fixture
def two_projects(make_server: Callable[..., LiveServer], tmp_path: Path, store_config: Callable[[Path], dict[str, Any]]
                 ) -> tuple[LiveServer, dict[str, str], dict[str, str]]:
    """A server on this test's backend with the projects acme and globex (their auth headers)."""
    keys = KeyStore(tmp_path / "keys.db")
    acme, _ = keys.create("acme")
    globex, _ = keys.create("globex")
    server = make_server(keys=keys, vector_store=store_config(tmp_path / "server.db"))
    return server, {"Authorization": f"Bearer {acme}"}, {"Authorization": f"Bearer {globex}"}


def test_an_sdk_user_reads_the_exchange_id_and_waits_until_it_is_learnt(
        two_projects: tuple[LiveServer, dict[str, str], dict[str, str]], upstream: ScriptedUpstream) -> None:
    server, acme, globex = two_projects
    upstream.handler = slow_extraction(2.0)
    sdk = openai.OpenAI(base_url=server.url + "/v1", api_key=acme["Authorization"].split()[1], max_retries=0)
    raw = sdk.chat.completions.with_raw_response.create(model="m", messages=[{"role": "user", "content": SEED}],
                                                         extra_body={"user_id": "alice"})
    exchange_id = raw.parse().metadata["exchange_id"]
    url = f"{server.url}/v1/exchanges/{exchange_id}"
    assert httpx.get(url, headers=acme).json()["status"] == "queued", "extraction takes two seconds"
    assert httpx.get(url, headers=globex).status_code == 404, "another project's exchange is not there"
    openai_spec.validate(json.loads(raw.text), "CreateChatCompletionResponse", SPEC_PATH)  # a string map: still OpenAI's shape
    started = time.monotonic()
    state = httpx.get(url, params={"wait": 30}, headers=acme, timeout=40).json()
    assert state == {"id": exchange_id, "status": "learnt", "attempts": 0, "last_error": None}
    assert time.monotonic() - started < 10
    learnt = httpx.get(f"{server.url}/v1/memories", params={"user_id": "alice"}, headers=acme).json()["results"]
    assert sorted(m["memory"] for m in learnt) == ["Is allergic to cheese", "Loves Indian food"]
    one_off = sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert one_off.metadata is None, "a call without a scope queues nothing"


def test_a_stream_names_its_exchange_on_the_first_chunk(server: LiveServer, sdk: openai.OpenAI) -> None:
    chunks = list(sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": SEED}], stream=True,
                                              extra_body={"user_id": "bob"}))
    exchange_id = chunks[0].model_extra["metadata"]["exchange_id"]
    assert all("metadata" not in c.model_extra for c in chunks[1:])
    assert httpx.get(f"{server.url}/v1/exchanges/{exchange_id}", params={"wait": 30}, timeout=40).json()["status"] == "learnt"
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json={
            "model": "m", "messages": [{"role": "user", "content": "hello"}], "stream": True, "user_id": "bob"}) as r:
        events = [json.loads(e[6:]) for e in r.read().decode().split("\n\n") if e and e != "data: [DONE]"]
    assert set(events[0]["metadata"]) == {"exchange_id"}
    for event in events:
        event.pop("metadata", None)
        openai_spec.validate(event, "CreateChatCompletionStreamResponse", SPEC_PATH)


def test_a_dead_exchange_is_told_as_dead(server: LiveServer, upstream: ScriptedUpstream) -> None:
    def no_memory_model(req: ScriptedRequest) -> Reply:
        if req.stage == "extract":
            return Reply.error(404, "The model 'm' does not exist", type="invalid_request_error", code="model_not_found")
        return Reply.text("Noted!")

    upstream.handler = no_memory_model
    queued = httpx.post(f"{server.url}/v1/exchanges", json=exchange()).json()
    state = httpx.get(f"{server.url}/v1/exchanges/{queued['id']}", params={"wait": 30}, timeout=40).json()
    assert state["status"] == "dead" and "does not exist" in state["last_error"]


def test_replayed_exchanges_get_one_id_and_are_learnt_from_once(server: LiveServer, upstream: ScriptedUpstream) -> None:
    answers = [httpx.post(f"{server.url}/v1/exchanges", json=exchange()).json() for _ in range(20)]
    assert len({a["id"] for a in answers}) == 1
    (exchange_id,) = {a["id"] for a in answers}
    assert httpx.get(f"{server.url}/v1/exchanges/{exchange_id}", params={"wait": 30}, timeout=40).json()["status"] == "learnt"
    again = httpx.post(f"{server.url}/v1/exchanges", json=exchange()).json()
    assert again == {"id": exchange_id, "status": "learnt"}, "a replay after learning is recognised too"
    # the client's own id (the hosted client's resync sends one) is the key, in the body or a header
    by_id = {httpx.post(f"{server.url}/v1/exchanges", json={**exchange("I love Indian food", "carol"), "id": "kept-1"}).json()["id"]
             for _ in range(3)}
    by_header = {httpx.post(f"{server.url}/v1/exchanges", json=exchange("I love Indian food", "dave"),
                            headers={"Idempotency-Key": "k-7"}).json()["id"] for _ in range(3)}
    assert len(by_id) == 1 and len(by_header) == 1
    for item in by_id | by_header:
        assert httpx.get(f"{server.url}/v1/exchanges/{item}", params={"wait": 30}, timeout=40).json()["status"] == "learnt"
    assert len(upstream.chat_requests("extract")) == 3, "each exchange was learnt from once"


def test_waiting_is_bounded_and_an_unknown_exchange_is_404(server: LiveServer) -> None:
    too_long = httpx.get(f"{server.url}/v1/exchanges/x", params={"wait": 61})
    assert too_long.status_code == 400 and "wait" in too_long.json()["error"]["message"]
    unknown = httpx.get(f"{server.url}/v1/exchanges/no-such-exchange", params={"wait": 1})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "exchange_not_found"
    openai_spec.validate(unknown.json(), "ErrorResponse", SPEC_PATH)


def test_a_full_outbox_refuses_exchanges_but_never_a_chat(make_server: Callable[..., LiveServer], upstream: ScriptedUpstream) -> None:
    def extraction_down(req: ScriptedRequest) -> Reply:
        return Reply.error(503, "overloaded") if req.stage == "extract" else Reply.text("Noted!")

    upstream.handler = extraction_down  # a retry waits a minute: what is queued stays queued
    server = make_server(outbox={"max_queued": 2, "max_queued_mb": 0.01, "retry_base_seconds": 60, "poll_seconds": 0.05,
                                 "exit_flush_seconds": 0})
    for n in range(2):
        assert httpx.post(f"{server.url}/v1/exchanges", json=exchange(f"turn {n}")).status_code == 200
    full = httpx.post(f"{server.url}/v1/exchanges", json=exchange("one more"))
    assert full.status_code == 429 and full.json()["error"]["code"] == "outbox_full"
    assert "outbox.max_queued" in full.json()["error"]["message"]
    openai_spec.validate(full.json(), "ErrorResponse", SPEC_PATH)
    huge = httpx.post(f"{server.url}/v1/exchanges", json=exchange("x" * 20_000))
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "exchange_too_large"
    chat = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": SEED}],
                                                                 "user_id": "alice"})
    assert chat.status_code == 200 and chat.json()["choices"][0]["message"]["content"] == "Noted!"
    assert "metadata" not in chat.json(), "its exchange was not queued, so it names none"


@pytest.mark.parametrize("key", ["", "x" * 201, "caf\u00e9", "a b", "\ud800"])
def test_a_bad_idempotency_key_is_a_clear_400(server: LiveServer, key: str) -> None:
    body = json.dumps({**exchange(), "id": key}).encode()  # (json.dumps escapes a lone surrogate)
    r = httpx.post(f"{server.url}/v1/exchanges", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "id" in r.json()["error"]["message"]
