"""API keys: each belongs to a project, is shown once, and is stored only as a SHA-256 hash.

Keys are 32 random bytes, so an unsalted fast hash is enough (nothing to brute-force) and lets a
request's key be found with one indexed lookup.

The inspector's logins are **sessions** in the same file (``ui_sessions``), so its cookie never
holds a key: a random token, stored only as its hash, tied to the key that logged in and to an
expiry. A sessions table rather than a signed token because (1) every ``memlane serve --workers``
process opens this one file, so no shared memory or secret is needed; (2) it ends for real:
logout deletes the row, and a session counts only while its key is active, so revoking the key
ends it at once; (3) a copy of this file gives no way in: it holds hashes of keys and of session
tokens, while a token signed with a secret kept here could be forged by whoever reads it.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import sqlite3
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memlane.config import memlane_home
from memlane.errors import ValidationError
from memlane.files import private_dir, private_file

KEY_PREFIX = "ml-"
PROJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")  # always fullmatch: "$" admits a trailing newline
DEFAULT_PROJECT = "default"
SESSION_PREFIX = "mls-"
#: how long an inspector login lasts (a working day); logging in again starts a new one
SESSION_SECONDS = 8 * 3600


@dataclass(frozen=True)
class KeyInfo:
    id: str
    project: str
    prefix: str
    created_at: float
    revoked_at: float | None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_project(name: str) -> str:
    if not isinstance(name, str) or not PROJECT_NAME.fullmatch(name):
        raise ValidationError(
            f"project name {name!r} must be 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit",
            param="project",
        )
    return name


class KeyStore:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else memlane_home() / "keys.db"
        private_dir(self.path.parent)
        private_file(self.path)  # before sqlite opens it: its journal files take the same mode
        self._local = threading.local()
        #: ``any_created``'s memory: the change counter at which the table held no key
        self._none_at: bytes | None = None
        self._counter_fd: int | None = None
        self._counter_closer: Any = None
        self._counter_lock = threading.Lock()
        with self._db as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, project TEXT NOT NULL, prefix TEXT NOT NULL,"
                " key_hash TEXT NOT NULL UNIQUE, created_at REAL NOT NULL, revoked_at REAL)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS ui_sessions (token_hash TEXT PRIMARY KEY, key_id TEXT NOT NULL,"
                       " expires_at REAL NOT NULL)")

    @property
    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = sqlite3.connect(str(self.path), check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 10000")
        return conn

    def create(self, project: str) -> tuple[str, KeyInfo]:
        """A new key for ``project``; the key itself is returned here and never again."""
        check_project(project)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        info = KeyInfo(id="key_" + secrets.token_hex(6), project=project, prefix=key[:10], created_at=time.time(), revoked_at=None)
        with self._db as db:
            db.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, NULL)", (info.id, project, info.prefix, hash_key(key), info.created_at))
        return key, info

    def lookup(self, key: str) -> KeyInfo | None:
        row = self._db.execute(
            "SELECT id, project, prefix, created_at, revoked_at FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
            (hash_key(key),),
        ).fetchone()
        return KeyInfo(*row) if row else None

    def list(self) -> list[KeyInfo]:
        rows = self._db.execute("SELECT id, project, prefix, created_at, revoked_at FROM api_keys ORDER BY created_at").fetchall()
        return [KeyInfo(*r) for r in rows]

    def revoke(self, key_id: str) -> bool:
        """Revoked for good; the key's inspector sessions end with it."""
        with self._db as db:
            db.execute("DELETE FROM ui_sessions WHERE key_id = ?", (key_id,))
            return db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (time.time(), key_id)).rowcount > 0

    def start_session(self, key: str, seconds: float = SESSION_SECONDS) -> tuple[str, KeyInfo] | None:
        """A new inspector session for an active ``key``: its token (returned only here) and the
        key's info; None for a key that is not active. Expired sessions are swept here."""
        info = self.lookup(key)
        if info is None:
            return None
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        with self._db as db:
            db.execute("DELETE FROM ui_sessions WHERE expires_at <= ?", (now,))
            db.execute("INSERT INTO ui_sessions VALUES (?, ?, ?)", (hash_key(token), info.id, now + seconds))
        return token, info

    def session(self, token: str) -> KeyInfo | None:
        """The key behind a live session token: unexpired, not logged out, its key not revoked."""
        if not token.startswith(SESSION_PREFIX):
            return None
        row = self._db.execute(
            "SELECT k.id, k.project, k.prefix, k.created_at, k.revoked_at FROM ui_sessions s JOIN api_keys k ON k.id = s.key_id"
            " WHERE s.token_hash = ? AND s.expires_at > ? AND k.revoked_at IS NULL",
            (hash_key(token), time.time()),
        ).fetchone()
        return KeyInfo(*row) if row else None

    def end_session(self, token: str) -> None:
        with self._db as db:
            db.execute("DELETE FROM ui_sessions WHERE token_hash = ?", (hash_key(token),))

    def any_active(self) -> bool:
        return self._db.execute("SELECT 1 FROM api_keys WHERE revoked_at IS NULL LIMIT 1").fetchone() is not None

    def any_created(self) -> bool:
        """Whether a key was ever created here, revoked or not: from then on keys are required.
        The server asks on every request until one was; "none" is remembered with the file's
        change counter (``_change_counter``), and the table read again only once it moved: one
        ``pread`` instead of a query, whose file locks and journal checks held the event loop
        ~1-2 ms a request on a busy machine."""
        counter = self._change_counter()
        if counter is not None and counter == self._none_at:
            return False
        created = self._db.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone() is not None
        if not created:
            self._none_at = counter
        return created

    def _change_counter(self) -> bytes | None:
        """SQLite's file change counter (header bytes 24-27), which every commit to a database
        in rollback-journal mode (this file's) increments, whoever commits: another process's
        ``memlane keys create`` too. None when it cannot be read or does not count commits (a
        WAL-mode file: header byte 18 is 2): then the table is read each time."""
        with self._counter_lock:
            try:
                if self._counter_fd is not None and os.fstat(self._counter_fd).st_nlink == 0:  # the file was replaced
                    self._counter_closer()
                    self._counter_fd = None
                if self._counter_fd is None:
                    self._counter_fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                    self._counter_closer = weakref.finalize(self, os.close, self._counter_fd)
                header = os.pread(self._counter_fd, 10, 18)
            except OSError:
                return None
        return header[6:10] if len(header) == 10 and header[0] == 1 else None
