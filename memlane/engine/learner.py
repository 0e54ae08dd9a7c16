"""The background learner: works through the store's outbox with ``Memory.learn``.

Failures are retried with exponential backoff and stay visible (``status()``, the log, the
counters); they never reach the chat call that produced the exchange. Any number of learners,
in any number of processes, can share one outbox: items are leased, and an item leaves the
outbox only in the commit that applies what was learnt from it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from memlane.config import OutboxConfig
from memlane.engine.memory import Memory
from memlane.stores.outbox import LeaseLost, owner_id

log = logging.getLogger("memlane.learner")


@dataclass
class LearnerCounters:
    learned: int = 0
    failed_attempts: int = 0
    lease_lost: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    events: dict[str, int] = field(default_factory=lambda: {"ADD": 0, "UPDATE": 0, "DELETE": 0})


class Learner:
    def __init__(self, memory: Memory, settings: OutboxConfig) -> None:
        self.memory = memory
        self.settings = settings
        self.owner = owner_id(uuid.uuid4().hex[:8])
        self.counters = LearnerCounters()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: True from a claim until its outcome is fully recorded (the row can be gone before that)
        self._working = False

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="memlane-learner", daemon=True)
                self._thread.start()

    def notify(self) -> None:
        """Something was enqueued: look now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def backoff(self, attempts: int) -> float:
        return min(self.settings.retry_base_seconds * (2 ** attempts), self.settings.retry_max_seconds)

    def run_once(self) -> bool:
        """Claim and learn one item; False when nothing was due."""
        self._working = True
        try:
            return self._run_claimed()
        finally:
            self._working = False

    def _run_claimed(self) -> bool:
        item = self.memory.store.outbox_claim(self.owner, self.settings.lease_seconds)
        if item is None:
            return False
        try:
            applied = self.memory.learn(item)
        except LeaseLost:
            self.counters.lease_lost += 1
            log.warning("outbox item %s was taken over by another worker; this attempt is discarded", item.id)
        except Exception as exc:  # noqa: BLE001 - every failure is retried, counted and logged
            delay = self.backoff(item.attempts)
            self.counters.failed_attempts += 1
            self.counters.last_error = f"{type(exc).__name__}: {exc}"
            self.counters.last_error_at = time.time()
            log.warning("learning from outbox item %s failed (attempt %d), retry in %.1fs: %s",
                        item.id, item.attempts + 1, delay, self.counters.last_error)
            self.memory.store.outbox_retry(item.id, self.counters.last_error, delay)
        else:
            self.counters.learned += 1
            for a in applied:
                self.counters.events[a.event] = self.counters.events.get(a.event, 0) + 1
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except Exception as exc:  # noqa: BLE001 - the store may be down; keep the thread alive
                log.warning("outbox unavailable: %s", exc)
                worked = False
            if not worked:
                with self._idle:
                    self._idle.notify_all()
                self._wake.wait(self.settings.poll_seconds)
                self._wake.clear()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the outbox is empty; True when it is, False when ``timeout`` ran out."""
        self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self.memory.store.outbox_stats()["pending"] == 0 and not self._working:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            self._wake.set()
            with self._idle:
                self._idle.wait(0.05 if deadline is None else max(0.0, min(0.05, deadline - time.monotonic())))

    def status(self) -> dict[str, Any]:
        stats = self.memory.store.outbox_stats()
        c = self.counters
        return {
            **stats,
            "learned": c.learned,
            "failed_attempts": c.failed_attempts,
            "lease_lost": c.lease_lost,
            "events": dict(c.events),
            "worker_last_error": c.last_error,
            "worker_alive": bool(self._thread and self._thread.is_alive()),
        }
