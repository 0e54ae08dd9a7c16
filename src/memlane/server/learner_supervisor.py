"""``memlane serve``'s learner processes: started with the server (once, whatever
``--workers``), restarted when one dies, stopped with it (SIGTERM, then SIGKILL after
``server.learner_stop_seconds``).

A restart needs no clean-up: the dead process's leases name its pid, so the new process takes
them over at its first claim (``owner_is_dead``), and what it had half learnt was never
committed (an outbox item leaves only in the commit that applies what was learnt from it).
A process that keeps dying at once is restarted less and less often (up to ``MAX_BACKOFF``
seconds apart), and each death is logged with its exit status.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from memlane.config import MemlaneConfig

log = logging.getLogger("memlane.learner_supervisor")

#: seconds between two looks at the processes
WATCH_SECONDS = 0.2
#: a process that lived less than this died "at once": the next start waits longer
QUICK_DEATH_SECONDS = 5.0
MAX_BACKOFF = 30.0


def why_not_a_process(config: MemlaneConfig) -> str | None:
    """Why this store cannot be shared with a learner process (then the server learns in its
    own threads), or None when it can."""
    store = config.vector_store
    options = store.config
    if store.provider == "qdrant" and not (options.get("url") or options.get("host")):
        return "Qdrant's local mode opens a folder in one process only"
    if store.provider == "sqlite" and str(options.get("path") or "") == ":memory:":
        return "an in-memory SQLite store lives in one process"
    return None


class LearnerSupervisor:
    def __init__(self, config: MemlaneConfig, config_path: str | None, *, log_level: str = "info",
                 directory: Path | None = None) -> None:
        self.config = config
        self.config_path = str(Path(config_path).resolve()) if config_path else os.environ.get("MEMLANE_CONFIG")
        self.count = config.server.learner_processes
        self.log_level = log_level
        self._made_dir = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="memlane-learners-"))
        self._procs: list[subprocess.Popen[bytes] | None] = [None] * self.count
        self._started_at = [0.0] * self.count
        self._backoff = [0.0] * self.count
        self._next_start = [0.0] * self.count
        #: restarts after a death, per process (for the log and tests)
        self.restarts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self._procs if p is not None and p.poll() is None]

    def _spawn(self, index: int) -> None:
        command = [sys.executable, "-m", "memlane.server.learner_process", "--dir", str(self.directory),
                   "--index", str(index), "--parent", str(os.getpid()), "--log-level", self.log_level]
        if self.config_path:
            command += ["--config", self.config_path]
        # its own session: a Ctrl-C in the terminal reaches the server, which then stops the
        # learners itself, after its own drain (they do the draining)
        self._procs[index] = subprocess.Popen(command, start_new_session=True)
        self._started_at[index] = time.monotonic()
        log.info("learner process %d started (pid %d)", index, self._procs[index].pid)  # type: ignore[union-attr]

    def start(self) -> None:
        with self._lock:
            for index in range(self.count):
                self._spawn(index)
        self._thread = threading.Thread(target=self._watch, name="memlane-learner-supervisor", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_SECONDS):
            with self._lock:
                if self._stop.is_set():
                    return
                for index, proc in enumerate(self._procs):
                    now = time.monotonic()
                    if proc is not None and proc.poll() is None:
                        continue
                    if proc is not None:  # it died: when may the next one start?
                        lived = now - self._started_at[index]
                        self._backoff[index] = (min(MAX_BACKOFF, max(0.5, self._backoff[index] * 2))
                                                if lived < QUICK_DEATH_SECONDS else 0.0)
                        self._next_start[index] = now + self._backoff[index]
                        log.error("learner process %d (pid %d) exited with status %s; starting another%s", index, proc.pid,
                                  proc.returncode, f" in {self._backoff[index]:.1f} s" if self._backoff[index] else "")
                        self._procs[index] = None
                    if now >= self._next_start[index]:
                        self._spawn(index)
                        self.restarts += 1

    def stop(self) -> None:
        """SIGTERM to each process, SIGKILL to any still running after ``learner_stop_seconds``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            running = [p for p in self._procs if p is not None and p.poll() is None]
            for proc in running:
                proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + self.config.server.learner_stop_seconds
            for proc in running:
                try:
                    proc.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning("learner process %d did not stop in %.0f s; killing it", proc.pid,
                                self.config.server.learner_stop_seconds)
                    proc.kill()
                    proc.wait()
        if self._made_dir:
            shutil.rmtree(self.directory, ignore_errors=True)
