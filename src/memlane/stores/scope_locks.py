"""Per-scope mutual exclusion for a store file shared by threads and processes (SQLite).

Within a process, each exact scope has its own lock, made when first wanted and dropped when
nobody holds or waits for it, so a process with a million users does not keep a million locks.

Across processes, a scope maps to one of ``STRIPES`` lock files beside the database, by a hash
of its key: the files never grow in number (a file per scope, never removed, left 2,244 behind
after one test run). Two scopes that share a stripe exclude each other across processes only:
within a process a stripe's file is taken once, by the first of its scopes to be locked, and
given back when the last lets go, so threads of one process never wait on each other for a
stripe. A process may therefore keep a busy stripe for a while; another process wanting one of
its scopes waits its turn, never for a scope held twice.
"""

from __future__ import annotations

import hashlib
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from memlane.files import FILE_MODE, private_dir

#: lock files per store (two processes learn two scopes at once unless they share a stripe)
STRIPES = 64


class _Stripe:
    """One lock file, held by this process while any of its scopes is locked here."""

    def __init__(self, path: Path) -> None:
        from filelock import FileLock

        # not thread-local: the thread that gives the file back may not be the one that took it;
        # the owner's alone, like the store beside it (memlane.files)
        self._file = FileLock(str(path), thread_local=False, mode=FILE_MODE)
        self._cond = threading.Condition()
        self._holders = 0
        self._taking = False

    def enter(self) -> None:
        with self._cond:
            while self._taking:
                self._cond.wait()
            if self._holders:
                self._holders += 1
                return
            self._taking = True
        try:
            self._file.acquire()
        except BaseException:
            with self._cond:
                self._taking = False
                self._cond.notify_all()
            raise
        with self._cond:
            self._taking = False
            self._holders += 1
            self._cond.notify_all()

    def leave(self) -> None:
        with self._cond:
            self._holders -= 1
            if self._holders == 0:
                self._file.release()


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


class ScopeLocks:
    """``hold(key)``: the scope's lock in this process and, with a ``folder``, across processes."""

    def __init__(self, folder: Path | None, stripes: int = STRIPES) -> None:
        self.folder = folder
        self.stripes = stripes
        self._guard = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._files: dict[int, _Stripe] = {}

    def stripe_of(self, key: str) -> int:
        return int.from_bytes(hashlib.sha1(key.encode("utf-8", errors="surrogatepass")).digest()[:8], "big") % self.stripes

    def _stripe(self, key: str) -> _Stripe | None:
        if self.folder is None:
            return None
        number = self.stripe_of(key)
        with self._guard:
            stripe = self._files.get(number)
            if stripe is None:
                private_dir(self.folder)
                stripe = self._files[number] = _Stripe(self.folder / f"stripe-{number:02d}.lock")
            return stripe

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
            entry.users += 1
        try:
            with entry.lock:
                stripe = self._stripe(key)
                if stripe is None:
                    yield
                    return
                stripe.enter()
                try:
                    yield
                finally:
                    stripe.leave()
        finally:
            with self._guard:
                entry.users -= 1
                if entry.users == 0:
                    del self._entries[key]

    def held(self) -> int:
        """Scopes locked or waited for in this process now (for tests: nothing piles up)."""
        with self._guard:
            return len(self._entries)


def remove_per_scope_files(folder: Path) -> int:
    """Delete the lock files earlier versions made, one per scope (``<24 hex>.lock``), that no
    process holds now; returns how many. Stop older memlane processes on the store first: one
    still running would not exclude the new ones."""
    from filelock import FileLock, Timeout

    removed = 0
    if not folder.is_dir():
        return 0
    for path in folder.glob("*.lock"):
        stem = path.stem
        if len(stem) != 24 or any(c not in "0123456789abcdef" for c in stem):
            continue
        lock = FileLock(str(path), thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        try:
            path.unlink(missing_ok=True)
            removed += 1
        finally:
            lock.release()
    return removed
