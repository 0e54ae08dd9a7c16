"""The server's side of a learner process (``server.learner: process``): what a project's
client holds in place of its own ``Learner``.

It learns nothing itself. It answers what the server asks a learner: ``status()`` (the store's
outbox plus the counters the learner processes publish, added up), ``flush`` (wait until the
outbox is empty: the processes do the work), and it follows the processes' learnt logs so the
recall log still shows what learning from each logged chat changed, and the ``learn`` timings
still reach ``/metrics``. See ``server/learner_files.py`` for the files.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from memlane.engine.learner import HURRY_SECONDS
from memlane.engine.memory import Memory
from memlane.engine.timing import Timings
from memlane.server.learner_files import LearntTail, Wakes, learnt_path, merged_status

log = logging.getLogger("memlane.learner_view")

#: seconds between two reads of the learnt logs
FOLLOW_SECONDS = 0.2
#: seconds between two hurries sent while a flush waits (each lasts ``HURRY_SECONDS`` there)
HURRY_EVERY = HURRY_SECONDS / 2


class ProcessLearnerView:
    def __init__(self, memory: Memory, directory: Path, project: str, processes: int) -> None:
        self.memory = memory
        self.directory = directory
        self.project = project
        self.timings = Timings()
        self.on_learned: Callable[[str, list[dict[str, Any]]], None] | None = None
        self._tails = [LearntTail(learnt_path(directory, project, i)) for i in range(processes)]
        self._wakes = Wakes(directory, project, processes)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._follow, name=f"memlane-learnt-{self.project}", daemon=True)
            self._thread.start()

    def notify(self) -> None:
        """An exchange was queued: wake the learner processes (else they look every ``outbox.poll_seconds``)."""
        self._wakes.send()

    def hurry(self) -> None:
        """Someone waits for what is queued: the processes learn short batches at once."""
        self._wakes.hurry()

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.follow_once()
        for tail in self._tails:
            tail.close()
        self._wakes.close()

    def follow_once(self) -> None:
        for tail in self._tails:
            for record in tail.read():
                if record.get("seconds") is not None:
                    self.timings.tell("learn", float(record["seconds"]))
                if self.on_learned is not None and isinstance(record.get("id"), str):
                    self.on_learned(record["id"], record.get("changes") or [])

    def _follow(self) -> None:
        while not self._stop.wait(FOLLOW_SECONDS):
            try:
                self.follow_once()
            except Exception as exc:  # noqa: BLE001 - the inspector's lines must never stop the server
                log.warning("reading the learner processes' learnt log: %s", exc)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until no live item is left in the outbox (the learner processes empty it)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        hurried_at = None
        while self.memory.outbox_status()["pending"]:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return False
            if hurried_at is None or now - hurried_at >= HURRY_EVERY:
                self.hurry()
                hurried_at = now
            time.sleep(0.05)
        return True

    def status(self) -> dict[str, Any]:
        return {**self.memory.outbox_status(), **merged_status(self.directory, self.project)}
