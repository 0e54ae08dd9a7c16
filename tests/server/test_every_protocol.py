"""One behavioural suite for every chat protocol and face: chat completions and Responses on the
embedded client and through the server (the openai SDK), Anthropic Messages through the server
(the anthropic SDK). Each case runs the same script: recall reaches the model, the exchange is
learnt (streamed or not), a memory failure never breaks the call, an upstream error is the SDK's own."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import anthropic
import httpx
import openai
import pytest

from memlane import Memlane
from memlane.proxy.recall import MEMORY_PREAMBLE
from memlane.server.app import create_app
from memlane.server.keys import KeyStore
from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import client_config, restaurant_llm
from tests.threads import wait_until

SYSTEM = "You are a helpful assistant who plans meals."
SEED = "I love Indian food but I cannot eat pizza since I'm allergic to cheese."
DINNER = "Suggest dinner options in San Francisco."
CASES = ["chat/embedded", "chat/server", "responses/embedded", "responses/server", "messages/server"]
BROKEN_EMBEDDER = {"provider": "openai", "config": {"base_url": "http://127.0.0.1:9/v1", "api_key": "k", "model": "e", "max_retries": 0}}


@dataclass
class Face:
    """One protocol on one face: ``ask`` answers (text, memlane's metadata) like an app would."""

    protocol: str
    ask: Callable[..., tuple[str, dict[str, Any]]]
    remember: Callable[[str], None]
    memories: Callable[[], set[str]]
    errors: tuple[type[BaseException], ...]


def _meta(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    return value if isinstance(value, dict) else value.model_dump(mode="json", exclude_none=True)


def _ask_openai(client: Any, protocol: str, text: str, extra: dict[str, Any], stream: bool, typed: bool) -> tuple[str, dict[str, Any]]:
    """``typed``: memlane's own client (keyword arguments); else the openai SDK (extra_body)."""
    fields = extra if typed else {"extra_body": extra}
    if protocol == "chat":
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
        if not stream:
            answer = client.chat.completions.create(model="m", messages=messages, **fields)
            return answer.choices[0].message.content, _meta(answer.metadata)
        parts, meta = [], {}
        stream_of = client.chat.completions.create(model="m", messages=messages, stream=True, **fields)
        for i, chunk in enumerate(stream_of):
            meta = meta or _meta((chunk.model_extra or {}).get("metadata") if i == 0 else None)
            parts += [c.delta.content for c in chunk.choices if c.delta and c.delta.content]
        return "".join(parts), meta or _meta(getattr(stream_of, "metadata", None))  # memlane's client: on the stream
    if not stream:
        answer = client.responses.create(model="m", instructions=SYSTEM, input=text, **fields)
        return answer.output_text, _meta(answer.metadata)
    parts, meta = [], {}
    events = client.responses.create(model="m", instructions=SYSTEM, input=text, stream=True, **fields)
    for i, event in enumerate(events):
        meta = meta or _meta((event.model_extra or {}).get("metadata") if i == 0 else None)
        parts += [event.delta] if event.type == "response.output_text.delta" else []
    return "".join(parts), meta or _meta(getattr(events, "metadata", None))


def _ask_anthropic(client: anthropic.Anthropic, text: str, extra: dict[str, Any], stream: bool) -> tuple[str, dict[str, Any]]:
    kwargs = {"model": "claude-x", "max_tokens": 256, "system": SYSTEM, "messages": [{"role": "user", "content": text}],
              "extra_body": extra}
    if not stream:
        answer = client.messages.create(**kwargs)
        return "".join(b.text for b in answer.content if b.type == "text"), _meta((answer.model_extra or {}).get("metadata"))
    parts, meta = [], {}
    for event in client.messages.create(stream=True, **kwargs):
        if event.type == "message_start":
            meta = _meta((event.message.model_extra or {}).get("metadata"))
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            parts.append(event.delta.text)
    return "".join(parts), meta


@pytest.fixture(params=CASES)
def face(request: pytest.FixtureRequest, tmp_path: Path, upstream: ScriptedUpstream) -> Iterator[Callable[..., Face]]:
    """``face(**config)``: the case's protocol on its face, on a fresh store."""
    protocol, where = request.param.split("/")
    made: list[Any] = []

    def build(**overrides: Any) -> Face:
        config = client_config(tmp_path / f"{len(made)}.db", upstream, **overrides)
        config["upstream"] = {**config["upstream"], "anthropic_base_url": upstream.anthropic_url, "anthropic_api_key": "k"}
        if where == "embedded":
            client = Memlane(config=config)
            made.append(client)

            def ask(text: str, *, stream: bool = False, include: bool = False) -> tuple[str, dict[str, Any]]:
                return _ask_openai(client, protocol, text, {"user_id": "alice", "include_memories": include}, stream, typed=True)

            return Face(protocol, ask, lambda text: client.memory.add(text, user_id="alice", infer=False),
                        lambda: {m["memory"] for m in client.memory.get_all(user_id="alice")["results"]}, (openai.APIStatusError,))
        server = LiveServer(create_app(config, keys=KeyStore(tmp_path / "keys.db"), drain_seconds=5)).start()
        made.append(server)
        sdk: Any = (anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0) if protocol == "messages"
                    else openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0))

        def ask_server(text: str, *, stream: bool = False, include: bool = False) -> tuple[str, dict[str, Any]]:
            extra = {"user_id": "alice", "include_memories": include}
            return _ask_anthropic(sdk, text, extra, stream) if protocol == "messages" else _ask_openai(sdk, protocol, text, extra, stream, False)

        def listed() -> set[str]:
            return {m["memory"] for m in httpx.get(server.url + "/v1/memories", params={"user_id": "alice"}).json()["results"]}

        def remember(text: str) -> None:
            httpx.post(server.url + "/v1/memories", json={"messages": text, "user_id": "alice", "infer": False}).raise_for_status()

        errors = (anthropic.APIStatusError,) if protocol == "messages" else (openai.APIStatusError,)
        return Face(protocol, ask_server, remember, listed, errors)

    yield build
    for thing in made:
        thing.close() if isinstance(thing, Memlane) else thing.stop()


def model_calls(upstream: ScriptedUpstream, protocol: str) -> list[ScriptedRequest]:
    return upstream.model_requests("chat", protocol=protocol)


def test_recall_reaches_the_model_and_the_caller_sees_it(face: Callable[..., Face], upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    app = face()
    app.remember("Is allergic to cheese")
    for stream in (False, True):
        text, meta = app.ask(DINNER, stream=stream, include=True)
        assert text == "Noted! Here is my suggestion."
        assert [m["memory"] for m in meta["memories"]] == ["Is allergic to cheese"] and meta["exchange_id"]
        sent = model_calls(upstream, app.protocol)[-1]
        assert MEMORY_PREAMBLE in sent.body.decode() and "Is allergic to cheese" in sent.body.decode()
        assert sent.last_user_text.endswith(DINNER), "the user's own words reach the model"
        assert SYSTEM in json.dumps(sent.json), "the system prompt too"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_the_exchange_is_learnt_from_the_users_words_and_the_reply(face: Callable[..., Face], upstream: ScriptedUpstream,
                                                                   stream: bool) -> None:
    upstream.handler = lambda req: restaurant_llm(req) if req.stage != "chat" else Reply.text("Then no cheese pizza for you!")
    app = face()
    assert app.ask(SEED, stream=stream)[0] == "Then no cheese pizza for you!"
    assert wait_until(lambda: app.memories() == {"Is allergic to cheese", "Loves Indian food"}, 30), app.memories()
    learnt_from = [r.last_user_text for r in upstream.chat_requests("extract")]
    assert any("Then no cheese pizza for you!" in text for text in learnt_from), "the reply is part of what is learnt"


def test_a_memory_failure_never_breaks_the_call(face: Callable[..., Face], upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    app = face(embedder=BROKEN_EMBEDDER)
    for stream in (False, True):
        assert app.ask(DINNER, stream=stream)[0] == "Noted! Here is my suggestion."


def test_an_upstream_error_is_the_sdks_own(face: Callable[..., Face], upstream: ScriptedUpstream) -> None:
    app = face()
    upstream.queue(Reply.error(429, "slow down", type="rate_limit_error"))
    with pytest.raises(app.errors) as raised:
        app.ask(DINNER)
    assert raised.value.status_code == 429  # type: ignore[attr-defined]
