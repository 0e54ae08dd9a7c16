from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import openai
import pytest

from memlane.server.app import create_app
from memlane.server.keys import KeyStore
from memlane.server.limits import Limits
from memlane.testing import ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.proxy.conftest import client_config, restaurant_llm


@pytest.fixture
def make_server(tmp_path: Path, upstream: ScriptedUpstream) -> Iterator[Callable[..., LiveServer]]:
    """A real uvicorn serving memlane on a free loopback port, chatting with the scripted upstream."""
    started: list[LiveServer] = []

    def make(*, keys: KeyStore | None = None, limits: Limits | None = None, **overrides: Any) -> LiveServer:
        config = client_config(tmp_path / "server.db", upstream, **overrides)
        server = LiveServer(create_app(config, keys=keys or KeyStore(tmp_path / "keys.db"), limits=limits, drain_seconds=5)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., LiveServer], upstream: ScriptedUpstream) -> LiveServer:
    upstream.handler = restaurant_llm
    return make_server()


@pytest.fixture
def sdk(server: LiveServer) -> openai.OpenAI:
    """The official openai SDK, pointed at memlane instead of OpenAI."""
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused-without-keys", max_retries=0)
