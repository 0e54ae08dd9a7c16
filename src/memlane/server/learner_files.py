"""What learner processes tell the server they serve, through files in one folder.

``memlane serve`` makes a folder for its run and names it to its learner processes and its own
workers (``MEMLANE_LEARNER_DIR``). For each project, learner process ``i`` keeps:

- ``<project>.<i>.status.json``: its counters (``Learner.counter_status``), rewritten whole
  (write, then rename) when a counter changed (looked at 4 times a second) and at least every
  2 s: the server's ``/metrics``, ``/ui`` and outbox status add them up over the processes. A restarted process starts from its own last file,
  so "learnt since the server started" keeps growing across a crash.
- ``<project>.<i>.learnt.jsonl``: one line per exchange learnt, ``{"id", "changes",
  "seconds"}``: what the inspector's chats page shows under a chat ("learnt ..."). Every
  server worker follows it (``LearntTail``); past ``MAX_LOG_BYTES`` it is renamed to
  ``.1`` and started again, and a follower finishes the old file before opening the new one.
- ``learner.<i>.port``: the loopback UDP port process ``i`` listens on for wake-ups: a chat's
  server sends the project's name part there when it queues an exchange (``Wakes``), so a
  lone chat is learnt at once rather than at the next ``outbox.poll_seconds``. A lost
  datagram costs only that wait.

Files, not a table: they hold only what one server run shows (counters since it started, the
changes of recent chats), never what the store must keep; the outbox stays the hand-off and
the record of what was learnt.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterable

#: a learnt log is renamed to ``.1`` (the previous ``.1`` dropped) past this size
MAX_LOG_BYTES = 8 * 1024 * 1024
#: a status file older than this says its process is not alive (it rewrites it at least every 2 s)
STALE_SECONDS = 5.0
#: the environment variable naming the folder
DIR_ENV = "MEMLANE_LEARNER_DIR"


def project_stem(project: str) -> str:
    """The file-name part of a project (safe whatever the name; ``Acme`` and ``acme`` apart)."""
    from memlane.server.projects import project_tag

    return project_tag(project)


def status_path(directory: Path, project: str, index: int) -> Path:
    return directory / f"{project_stem(project)}.{index}.status.json"


def learnt_path(directory: Path, project: str, index: int) -> Path:
    return directory / f"{project_stem(project)}.{index}.learnt.jsonl"


def port_path(directory: Path, index: int) -> Path:
    """Where learner process ``index`` writes the loopback UDP port it is woken on."""
    return directory / f"learner.{index}.port"


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_status(path: Path, counters: dict[str, Any]) -> None:
    """Replace the status file at once (readers see the old one or the new one, never half)."""
    write_atomically(path, json.dumps({"pid": os.getpid(), "updated_at": time.time(), "counters": counters}))


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _add(total: dict[str, Any], counters: dict[str, Any]) -> None:
    for key, value in counters.items():
        if isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        if isinstance(value, dict):
            into = total.setdefault(key, {})
            for name, n in value.items():
                into[name] = into.get(name, 0) + n
        elif isinstance(value, (int, float)):
            total[key] = total.get(key, 0) + value


def merged_status(directory: Path, project: str) -> dict[str, Any]:
    """The counters of every learner process of ``project``, added up; ``worker_alive`` when
    any wrote its file lately; ``worker_last_error`` the newest one's."""
    total: dict[str, Any] = {"learned": 0, "exchanges_learnt": 0, "llm_calls": 0, "batches": 0, "batch_fallbacks": 0,
                             "failed_attempts": 0, "dead_lettered": 0, "lease_lost": 0,
                             "events": {"ADD": 0, "UPDATE": 0, "DELETE": 0}, "dropped": {}}
    alive, newest, last_error = False, 0.0, None
    for path in sorted(directory.glob(f"{project_stem(project)}.*.status.json")):
        found = read_status(path)
        if not found:
            continue
        counters = found.get("counters") or {}
        _add(total, counters)
        updated = float(found.get("updated_at") or 0)
        alive = alive or time.time() - updated < STALE_SECONDS
        if counters.get("worker_last_error") and updated >= newest:
            newest, last_error = updated, counters["worker_last_error"]
    total["worker_last_error"] = last_error
    total["worker_alive"] = alive
    total["learner"] = "process"
    return total


def _ends_a_line(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


class LearntLog:
    """The writing end: one line per exchange learnt, from any of the learner's threads."""

    def __init__(self, path: Path, max_bytes: int = MAX_LOG_BYTES) -> None:
        self.path = path
        self._max = max_bytes
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open; closed by close()
        if self._file.tell() and not _ends_a_line(path):  # a killed writer's half line ends here
            self._file.write("\n")
            self._file.flush()

    def append(self, outbox_id: str, changes: list[dict[str, Any]], seconds: float | None) -> None:
        line = json.dumps({"id": outbox_id, "changes": changes, "seconds": seconds}, ensure_ascii=False) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()
            if self._file.tell() > self._max:
                self._file.close()
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def close(self) -> None:
        with self._lock:
            self._file.close()


class LearntTail:
    """The reading end, in a server worker: the lines added since the last ``read``. Starts at
    the file's end (what was learnt before this worker started belongs to no chat it logged)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: Any = None
        self._partial = ""
        self._open(at_end=True)

    def _open(self, *, at_end: bool) -> None:
        try:
            self._file = open(self.path, encoding="utf-8")  # noqa: SIM115 - followed until it is replaced
        except OSError:
            self._file = None
            return
        if at_end:
            self._file.seek(0, os.SEEK_END)

    def read(self) -> list[dict[str, Any]]:
        if self._file is None:
            self._open(at_end=False)  # created after we looked: all of it is new
            if self._file is None:
                return []
        lines = list(self._lines())
        try:
            replaced = os.stat(self.path).st_ino != os.fstat(self._file.fileno()).st_ino
        except OSError:
            replaced = False
        if replaced:  # renamed to .1: finish it, then follow the new file from its start
            lines += self._lines()
            self._file.close()
            self._partial = ""
            self._open(at_end=False)
            if self._file is not None:
                lines += self._lines()
        return [record for record in _parsed(lines)]

    def _lines(self) -> list[str]:
        text = self._partial + self._file.read()
        *whole, self._partial = text.split("\n")
        return whole

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _parsed(lines: Iterable[str]) -> Iterable[dict[str, Any]]:
    for line in lines:
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError:
                continue


#: what a wake-up datagram starts with when someone waits for what is queued (``Learner.hurry``)
HURRY = b"hurry:"


class Wakes:
    """The server's end of the wake-ups: one datagram per queued exchange (at most one per
    ``EVERY`` seconds and project), to every learner process's current port; ``hurry`` (the
    project's stem after ``HURRY``) when someone waits for what is queued."""

    EVERY = 0.005
    #: seconds between two reads of the port files (a restarted process has a new port)
    PORTS_EVERY = 1.0

    def __init__(self, directory: Path, project: str, processes: int) -> None:
        import socket

        self._paths = [port_path(directory, i) for i in range(processes)]
        self._message = project_stem(project).encode()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.setblocking(False)
        self._ports: list[int] = []
        self._ports_at = -self.PORTS_EVERY
        self._sent_at = 0.0

    def send(self) -> None:
        now = time.monotonic()
        if now - self._sent_at < self.EVERY:
            return
        self._sent_at = now
        self._send(self._message, now)

    def hurry(self) -> None:
        self._send(HURRY + self._message, time.monotonic())

    def _send(self, message: bytes, now: float) -> None:
        if now - self._ports_at >= self.PORTS_EVERY or not self._ports:
            self._ports_at = now
            ports = []
            for path in self._paths:
                try:
                    ports.append(int(path.read_text()))
                except (OSError, ValueError):
                    continue
            self._ports = ports
        for port in self._ports:
            try:
                self._socket.sendto(message, ("127.0.0.1", port))
            except OSError:
                continue

    def close(self) -> None:
        self._socket.close()
