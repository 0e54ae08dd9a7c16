"""Foreground first: recalls in flight, which background learning waits for.

Learning one exchange costs more CPU than recalling for one chat (an extraction call, a search
per fact, writes), and in one process both share the interpreter. Measured with learning on, 10k
real-text memories in the scope (bench/proxy_overhead.py): recall added 14.0 ms p50 / 31.0 ms
p95 to a chat while the learner ran beside it, 4.5 / 7.5 ms without it. So each learning step
first waits, up to ``outbox.yield_seconds``, until no recall is running: under load learning
lags (the outbox holds the exchanges, nothing is lost) instead of slowing chats.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator


class Foreground:
    def __init__(self) -> None:
        self._busy = 0
        self._idle = threading.Condition()

    @contextmanager
    def running(self) -> Iterator[None]:
        with self._idle:
            self._busy += 1
        try:
            yield
        finally:
            with self._idle:
                self._busy -= 1
                if not self._busy:
                    self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing runs in the foreground or ``timeout`` passed; True when idle."""
        if timeout <= 0:
            return True
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)
