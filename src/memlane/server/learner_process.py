"""A learner process: ``memlane serve``'s learning, beside the server instead of inside it.

``python -m memlane.server.learner_process --dir DIR [--config PATH] [--index N]`` is what
``memlane serve`` starts (``server.learner: process``); ``memlane learn`` runs the same by hand.
It opens the same config as the server, and for the default project and every project of the
keys file (read again every ``server.learner_rescan_seconds``, so a project created later is
picked up) runs the usual ``Learner`` on that project's store, through its own connections.

The store's outbox is the only hand-off: the server writes exchanges, this process leases and
learns them, and an item leaves the outbox in the commit that applies what was learnt from it.
So a kill -9 of this process loses nothing and learns nothing twice: its leases name its pid,
and the next claimer on this host (the restarted process) takes them over at once
(``stores/outbox.py``, ``owner_is_dead``); elsewhere they expire after ``outbox.lease_seconds``.

What the server shows about learning comes from the files this process writes in ``DIR``
(``server/learner_files.py``). It stops on SIGTERM or SIGINT (what is being learnt gets up to 5 s to finish; what does not is
learnt again by the next learner), and by itself when the server that started it is gone.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from memlane.config import MemlaneConfig, load_config
from memlane.engine.learner import Learner
from memlane.engine.memory import Memory
from memlane.server.cpu import settle_heap
from memlane.server.keys import DEFAULT_PROJECT, KeyStore
from memlane.server.learner_files import HURRY, LearntLog, learnt_path, port_path, project_stem, read_status, status_path, write_atomically, write_status

log = logging.getLogger("memlane.learner_process")

#: seconds between two looks at the counters (a changed one is published then)
PUBLISH_SECONDS = 0.25
#: the longest a status file goes unwritten (learner_files.STALE_SECONDS calls it dead after 5 s)
HEARTBEAT_SECONDS = 2.0


class ProjectLearner:
    """One project's store, its learner, and the files that tell the server about them."""

    def __init__(self, config: MemlaneConfig, project: str, directory: Path, index: int) -> None:
        from memlane.server.projects import project_config

        self.project = project
        self.stem = project_stem(project)
        self.memory = Memory(project_config(config, project))
        self.learner = Learner(self.memory, self.memory.config.outbox)
        self.status_file = status_path(directory, project, index)
        earlier = read_status(self.status_file)
        if earlier:  # restarted after a crash: count on from what the last run published
            self.learner.resume_counters(earlier.get("counters") or {})
        self.log = LearntLog(learnt_path(directory, project, index))
        self._seconds = threading.local()
        self.learner.timings.listen(self._timed)
        self.learner.on_learned = self._learned
        self._published: dict[str, Any] | None = None
        self._published_at = 0.0
        self.learner.start()

    def _timed(self, stage: str, seconds: float) -> None:
        if stage == "learn":  # told just before on_learned, in the same thread
            self._seconds.value = seconds

    def _learned(self, outbox_id: str, changes: list[dict[str, Any]]) -> None:
        self.log.append(outbox_id, changes, getattr(self._seconds, "value", None))

    def publish(self, *, force: bool = False) -> None:
        """Rewrite the status file when a counter changed, else every ``HEARTBEAT_SECONDS``
        (its age tells the server this process is alive): idle projects cost no writes."""
        counters, now = self.learner.counter_status(), time.monotonic()
        if not force and counters == self._published and now - self._published_at < HEARTBEAT_SECONDS:
            return
        write_status(self.status_file, counters)
        self._published, self._published_at = counters, now

    def stop(self, timeout: float) -> None:
        self.learner.stop(timeout)
        self.publish(force=True)
        self.log.close()
        self.memory.close()


def projects_of(keys: KeyStore) -> list[str]:
    """The default project and every project a key (active or not: its outbox may still hold
    exchanges) was made for."""
    return [DEFAULT_PROJECT, *sorted({k.project for k in keys.list()} - {DEFAULT_PROJECT})]


def listen_for_wakes(directory: Path, index: int, learners: dict[str, ProjectLearner], stop: threading.Event) -> None:
    """Wake a project's learner when its server says it queued an exchange (a UDP datagram
    naming the project, on a loopback port this process writes in ``directory``), and hurry
    it when the server says someone waits for what is queued (the name after ``HURRY``)."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    write_atomically(port_path(directory, index), str(sock.getsockname()[1]))

    def listen() -> None:
        with sock:
            while not stop.is_set():
                try:
                    message = sock.recv(512)
                except (TimeoutError, socket.timeout):
                    continue
                except OSError:
                    return
                hurried = message.startswith(HURRY)
                stem = message[len(HURRY):].decode(errors="replace") if hurried else message.decode(errors="replace")
                for one in list(learners.values()):
                    if one.stem == stem:
                        one.learner.hurry() if hurried else one.learner.notify()

    threading.Thread(target=listen, name="memlane-learner-wakes", daemon=True).start()


def parent_gone(parent: int | None) -> bool:
    return parent is not None and os.getppid() != parent


def run(config: MemlaneConfig, directory: Path, index: int = 0, *, parent: int | None = None,
        stop: threading.Event | None = None) -> None:
    """Learn every project's outbox until ``stop`` is set (SIGTERM/SIGINT set it) or the parent
    process is gone."""
    stop = stop or threading.Event()
    directory.mkdir(parents=True, exist_ok=True)
    keys = KeyStore(config.server.keys_file())
    learners: dict[str, ProjectLearner] = {}
    refused: set[str] = set()
    rescan_at = 0.0
    listen_for_wakes(directory, index, learners, stop)
    try:
        while not stop.is_set() and not parent_gone(parent):
            if time.monotonic() >= rescan_at:
                rescan_at = time.monotonic() + config.server.learner_rescan_seconds
                try:
                    names = projects_of(keys)
                except Exception as exc:  # noqa: BLE001 - the keys file is busy or gone for a moment
                    log.warning("cannot read the keys file (%s); the projects known stay served", exc)
                    names = list(learners)
                known = len(learners)
                for name in names:
                    if name in learners or name in refused:
                        continue
                    try:
                        learners[name] = ProjectLearner(config, name, directory, index)
                        log.info("learning project %s", name)
                    except Exception as exc:  # noqa: BLE001 - one project's store must not stop the others
                        log.error("cannot learn project %s: %s", name, exc)
                        if name != DEFAULT_PROJECT:
                            refused.add(name)
                if len(learners) > known:  # a project's engine lives as long as this process (server/cpu.py)
                    settle_heap()
            for one in list(learners.values()):
                try:
                    one.publish()
                except OSError as exc:
                    log.warning("cannot write the learner status of %s: %s", one.project, exc)
            stop.wait(PUBLISH_SECONDS)
    finally:
        for one in learners.values():
            try:
                one.stop(5.0)
            except Exception as exc:  # noqa: BLE001 - stopping anyway; the outbox keeps what is left
                log.warning("stopping the learner of %s: %s", one.project, exc)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m memlane.server.learner_process", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="the folder the server reads the learners' status from")
    parser.add_argument("--config", default=None, help="the server's config file (default: MEMLANE_CONFIG, the usual places)")
    parser.add_argument("--index", type=int, default=0, help="this process's number among the learner processes")
    parser.add_argument("--parent", type=int, default=None, help="stop when this process (the server) is gone")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from memlane.server.cpu import one_blas_thread

    one_blas_thread()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run(load_config(args.config or os.environ.get("MEMLANE_CONFIG")), Path(args.dir), args.index, parent=args.parent, stop=stop)


if __name__ == "__main__":
    main()
