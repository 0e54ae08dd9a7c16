"""A server process settles its heap once start-up is done: later garbage collections walk only
what was made since, so none of them stalls every request for a tenth of a second."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Iterator

import pytest

from memlane.server.app import create_app
from memlane.server.cpu import settle_heap
from memlane.server.keys import KeyStore
from memlane.testing import ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import client_config


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    """The test process's heap is given back to the collector afterwards: frozen objects are
    never collected as cycles, right for a server's process, wrong for a test run's."""
    gc.unfreeze()
    yield
    gc.unfreeze()


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_a_settled_heap_leaves_later_collections_only_the_new_objects() -> None:
    kept = [Node() for _ in range(10_000)]
    settle_heap()
    assert gc.get_freeze_count() >= len(kept)
    assert len(gc.get_objects()) < len(kept)  # what a collection walks now: not the settled objects
    fresh = Node()
    assert any(obj is fresh for obj in gc.get_objects())
    del fresh
    assert gc.collect() >= 1  # new garbage is collected as before


def test_the_server_settles_its_heap_only_when_it_owns_the_process(tmp_path: Path, upstream: ScriptedUpstream) -> None:
    for own_process, settled in ((False, False), (True, True)):
        config = client_config(tmp_path / f"own-{own_process}.db", upstream)
        server = LiveServer(create_app(config, keys=KeyStore(tmp_path / f"keys-{own_process}.db"), own_process=own_process)).start()
        try:
            assert (gc.get_freeze_count() > 0) is settled
        finally:
            server.stop()
            gc.unfreeze()
