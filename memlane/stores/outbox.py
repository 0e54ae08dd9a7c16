"""The outbox contract: a durable queue of exchanges to learn from, kept in the store.

Items are claimed with a lease (owner + expiry) so several workers, threads or processes, share
the work; the item is deleted in the same transaction that applies what was learnt (see
``MemoryStore.apply(..., outbox_done=...)``), so an exchange is learnt exactly once even when a
process dies mid-way. A lease whose owner process is gone (same host) is taken over at once.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any


@dataclass
class OutboxItem:
    id: str
    payload: dict[str, Any]
    attempts: int
    created_at: float
    owner: str
    last_error: str | None = None


class LeaseLost(Exception):
    """The item's lease expired and another worker took it: discard this work (internal)."""


def owner_id(token: str) -> str:
    """Who holds a lease: ``host:pid:token``; the pid lets a peer on the same host spot a dead owner."""
    return f"{socket.gethostname()}:{os.getpid()}:{token}"


def owner_is_dead(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine: only its lease expiry can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
