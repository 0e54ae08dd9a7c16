"""API keys: each belongs to a project, is shown once, and is stored only as a SHA-256 hash.

Keys are 32 random bytes, so an unsalted fast hash is enough (nothing to brute-force) and lets a
request's key be found with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from memlane.config import memlane_home
from memlane.errors import ValidationError

KEY_PREFIX = "ml-"
PROJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")  # always fullmatch: "$" admits a trailing newline
DEFAULT_PROJECT = "default"


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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._db as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, project TEXT NOT NULL, prefix TEXT NOT NULL,"
                " key_hash TEXT NOT NULL UNIQUE, created_at REAL NOT NULL, revoked_at REAL)"
            )

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
        with self._db as db:
            return db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (time.time(), key_id)).rowcount > 0

    def any_active(self) -> bool:
        return self._db.execute("SELECT 1 FROM api_keys WHERE revoked_at IS NULL LIMIT 1").fetchone() is not None

    def any_created(self) -> bool:
        """Whether a key was ever created here, revoked or not: from then on keys are required."""
        return self._db.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone() is not None
