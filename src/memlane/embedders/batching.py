"""Coalescing concurrent one-text embeddings into batches.

Under load many requests each want one query embedded at the same moment; a model embeds 8
short texts in far less than 8 times the time of one. Whoever finds no batch running takes
what is waiting (its own text among it) and embeds it as one batch, then hands over: the next
caller still waiting leads the next batch. A lone caller pays nothing extra: its batch is itself.

A leader embeds one batch, never "until nobody waits": under steady load that loop never ended,
and the leader's own request waited with it (a chat hung past 60 s in the soak benchmark).
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
        self._turn = threading.Condition()
        self._pending: list[tuple[str, Future[np.ndarray]]] = []
        self._leading = False
        #: how many model calls and texts went through (batches > calls means coalescing worked)
        self.calls = 0
        self.texts = 0

    def embed_one(self, text: str) -> np.ndarray:
        future: Future[np.ndarray] = Future()
        with self._turn:
            self._pending.append((text, future))
            while not future.done():
                if self._leading:
                    self._turn.wait()
                    continue
                self._leading = True
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                self._turn.release()
                try:
                    self._run(batch)
                finally:
                    self._turn.acquire()
                    self._leading = False
                    self._turn.notify_all()
        return future.result()

    def _run(self, batch: list[tuple[str, Future[np.ndarray]]]) -> None:
        try:
            vectors = self._embed([text for text, _ in batch])
        except BaseException as exc:  # noqa: BLE001 - every waiter of this batch gets the error
            for _, future in batch:
                future.set_exception(exc)
            return
        self.calls += 1
        self.texts += len(batch)
        for (_, future), vector in zip(batch, vectors):
            future.set_result(vector)
