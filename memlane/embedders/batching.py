"""Coalescing concurrent one-text embeddings into batches.

Under load many requests each want one query embedded at the same moment; a model embeds 8
short texts in far less than 8 times the time of one. The first caller becomes the leader and
embeds whatever is waiting, batch after batch, until nobody waits; the others just wait for
their row. A lone caller pays nothing extra: its batch is itself.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Callable, Sequence

import numpy as np


class QueryBatcher:
    def __init__(self, embed: Callable[[Sequence[str]], np.ndarray], max_batch: int = 32) -> None:
        self._embed = embed
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._pending: list[tuple[str, Future[np.ndarray]]] = []
        self._leading = False
        #: how many model calls and texts went through (batches > calls means coalescing worked)
        self.calls = 0
        self.texts = 0

    def embed_one(self, text: str) -> np.ndarray:
        future: Future[np.ndarray] = Future()
        with self._lock:
            self._pending.append((text, future))
            lead = not self._leading
            self._leading = True
        if lead:
            self._drain()
        return future.result()

    def _drain(self) -> None:
        while True:
            with self._lock:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                if not batch:
                    self._leading = False
                    return
            try:
                vectors = self._embed([text for text, _ in batch])
            except BaseException as exc:  # noqa: BLE001 - every waiter gets the error
                for _, future in batch:
                    future.set_exception(exc)
                continue
            self.calls += 1
            self.texts += len(batch)
            for (_, future), vector in zip(batch, vectors):
                future.set_result(vector)
