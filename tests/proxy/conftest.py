from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from memlane import Memlane
from memlane.testing import ScriptedUpstream
from tests.scenarios import client_config, restaurant_llm


@pytest.fixture
def make_client(tmp_path: Path, upstream: ScriptedUpstream, store_config: Callable[[Path], dict[str, Any]]) -> Iterator[Callable[..., Memlane]]:
    made: list[Memlane] = []

    def make(db_path: Path | None = None, **overrides: Any) -> Memlane:
        path = db_path or tmp_path / "client.db"
        overrides.setdefault("vector_store", store_config(path))
        client = Memlane(config=client_config(path, upstream, **overrides))
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., Memlane], upstream: ScriptedUpstream) -> Memlane:
    upstream.handler = restaurant_llm
    return make_client()
