"""Concurrent one-text embeddings are coalesced into batches, each caller gets its own row."""

from __future__ import annotations

import threading
import time
from typing import Sequence

import numpy as np
import pytest

from memlane.embedders.batching import QueryBatcher


def slow_embed(texts: Sequence[str]) -> np.ndarray:
    time.sleep(0.05)  # a model call: long enough for other callers to queue up
    return np.array([[float(len(t)), float(i)] for i, t in enumerate(texts)], dtype=np.float32)


def test_concurrent_callers_share_model_calls_and_get_their_own_rows() -> None:
    batcher = QueryBatcher(slow_embed)
    results: dict[str, np.ndarray] = {}

    def ask(text: str) -> None:
        results[text] = batcher.embed_one(text)

    threads = [threading.Thread(target=ask, args=("x" * n,)) for n in range(1, 17)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert batcher.texts == 16 and batcher.calls < 16
    assert all(results["x" * n][0] == n for n in range(1, 17))


def test_a_lone_caller_is_its_own_batch_and_errors_reach_every_waiter() -> None:
    batcher = QueryBatcher(slow_embed)
    assert batcher.embed_one("abc")[0] == 3 and batcher.calls == 1

    def broken(texts: Sequence[str]) -> np.ndarray:
        raise RuntimeError("model down")

    failing = QueryBatcher(broken)
    with pytest.raises(RuntimeError, match="model down"):
        failing.embed_one("x")
    with pytest.raises(RuntimeError):  # and the next caller is not stuck behind a dead leader
        failing.embed_one("y")


def test_under_steady_load_every_caller_is_answered_within_a_few_batches() -> None:
    """Callers keep arriving for 1.5 s: no caller (a leader included) waits for the stream of
    newcomers to end; each is answered within a few model calls (the old leader kept embedding
    batch after batch while anyone waited, and its own request hung)."""
    batcher = QueryBatcher(slow_embed, max_batch=4)
    stop = time.monotonic() + 1.5
    slowest: list[float] = []

    def caller(n: int) -> None:
        while time.monotonic() < stop:
            started = time.monotonic()
            assert batcher.embed_one("x" * n)[0] == n
            slowest.append(time.monotonic() - started)

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert slowest and max(slowest) < 0.5, f"a caller waited {max(slowest):.2f} s"
