"""How long each stage of memlane's work took, told to whoever listens: the server's metrics
(Prometheus histograms), or an app's own (``client.on_timing(fn)``)."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import Callable, Iterator

log = logging.getLogger("memlane")

#: ``recall`` (a chat's memory search), ``upstream`` (the model's answer), ``learn`` (one exchange learnt)
STAGES = ("recall", "upstream", "learn")

Listener = Callable[[str, float], None]


class Timings:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        """``listener(stage, seconds)`` after each stage; it must be quick (it runs inline)."""
        self._listeners.append(listener)

    def tell(self, stage: str, seconds: float) -> None:
        for listener in list(self._listeners):
            try:
                listener(stage, seconds)
            except Exception:  # noqa: BLE001 - a broken listener must never break chat or learning
                log.exception("a timing listener failed")

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Tell the stage's duration when the block completes (not when it raises)."""
        started = time.perf_counter()
        yield
        self.tell(stage, time.perf_counter() - started)
