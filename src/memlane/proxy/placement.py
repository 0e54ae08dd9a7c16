"""Where recalled memories go in a chat request, so that providers' prompt caches keep working.

OpenAI, Anthropic, vLLM and llama.cpp cache a prompt by its exact prefix: a request that repeats
the previous one's first N bytes is billed and computed only for the rest. A memory block that
changes with every question breaks that wherever it sits, and everything after it is paid again.

``pinned`` (the default) keeps each turn's block where it was first sent. A conversation grows
by appending; when the next request arrives with the same turns in front, each earlier user
turn gets back, byte for byte, the block it was sent with, and only the memories this
conversation was not shown yet go in a new block before the latest user turn. The request then
repeats the previous one up to its end: what the model was told about the user stays in the
conversation, as a tool's answer would. ``before_last_user`` places a fresh block before the
latest user turn each time (the prefix holds up to the previous turn's block), and
``after_system`` after the caller's system messages (for chat templates that take a system
message only first; nothing after it is cacheable).

Pinned blocks are kept in memory per process (``retrieval.pinned_blocks``, least recently used
go first), keyed by the scope and the exact turns in front: another user, or a conversation
that differs by one byte, never finds them. A conversation whose turns reach different
processes (``memlane serve --workers``) gets fresh blocks, as with ``before_last_user``.

How a block is attached is the protocol's: by default it is a message of its own (a system
message, as chat completions and Responses take one anywhere); a protocol without system
messages between turns (Anthropic's Messages) passes ``attach``, which puts the block inside
the user turn it belongs to, and ``is_user``, which says which turns are the user's own (a
message of tool results only is not).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any, Callable, Sequence

from memlane.proxy.recall import as_mapping, memory_message
from memlane.records import Scope, SearchHit

PLACEMENTS = ("pinned", "before_last_user", "after_system")

#: ``attach(turn, block)``: the user turn with the memory block (``memory_message``) inside it, a copy
Attach = Callable[[Any, dict[str, str]], Any]
IsUser = Callable[[Any], bool]


def _role_is_user(message: Any) -> bool:
    return as_mapping(message).get("role") == "user"


def _turn_bytes(message: Any) -> bytes:
    return json.dumps(as_mapping(message), sort_keys=True, ensure_ascii=False, default=str,
                      separators=(",", ":")).encode("utf-8", "surrogatepass")


def _latest_user(messages: Sequence[Any], is_user: IsUser = _role_is_user) -> int | None:
    return next((i for i in range(len(messages) - 1, -1, -1) if is_user(messages[i])), None)


def _position(messages: Sequence[Any], placement: str, is_user: IsUser = _role_is_user) -> int:
    """Where a fresh block goes: before the latest user turn, or after the leading system messages."""
    start = 0
    while start < len(messages) and as_mapping(messages[start]).get("role") in ("system", "developer"):
        start += 1
    latest = _latest_user(messages, is_user) if placement != "after_system" else None
    return latest if latest is not None and latest >= start else start


class PinnedBlocks:
    """The blocks sent before user turns, by (scope, the turns up to and including that user
    turn); bounded, least recently used first out."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._blocks: OrderedDict[str, tuple[dict[str, str], frozenset[tuple[str, str]]]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._blocks)

    def get(self, key: str) -> tuple[dict[str, str], frozenset[tuple[str, str]]] | None:
        with self._lock:
            found = self._blocks.get(key)
            if found is not None:
                self._blocks.move_to_end(key)
            return found

    def put(self, key: str, block: dict[str, str], shown: frozenset[tuple[str, str]]) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._blocks[key] = (block, shown)
            self._blocks.move_to_end(key)
            while len(self._blocks) > self.size:
                self._blocks.popitem(last=False)


def place(messages: Sequence[Any], hits: Sequence[SearchHit], scope: Scope, placement: str,
          pinned: PinnedBlocks | None = None, *, attach: Attach | None = None, is_user: IsUser = _role_is_user) -> list[Any]:
    """A new list: the caller's messages, untouched and in order, with the memory blocks
    ``placement`` puts in (see the module docstring). No hits and nothing pinned: no block.
    With ``attach``, a block goes inside the user turn it precedes (that turn a copy), never
    as a message of its own; ``after_system`` is then the protocol's to handle."""
    latest = _latest_user(messages, is_user)
    if placement != "pinned" or pinned is None or latest is None:
        out = list(messages)
        if hits and attach is None:
            out.insert(_position(out, "after_system" if latest is None else placement, is_user), memory_message(hits))
        elif hits and latest is not None:
            out[latest] = attach(out[latest], memory_message(hits))
        return out
    running = hashlib.sha256(scope.key.encode("utf-8", "surrogatepass") + b"\x00")
    out: list[Any] = []
    shown: set[tuple[str, str]] = set()
    latest_key: str | None = None
    latest_at = 0
    for index, message in enumerate(messages):
        running.update(_turn_bytes(message) + b"\x1e")
        if index <= latest and is_user(message):
            key = running.hexdigest()
            found = pinned.get(key)
            if found is not None:
                shown |= found[1]
                if attach is None:
                    out.append(found[0])
                else:
                    message = attach(message, found[0])
            elif index == latest:
                latest_key, latest_at = key, len(out)
        out.append(message)
    if latest_key is None:
        return out  # the latest turn's own block is pinned: this request repeats the one it came with
    new = [h for h in hits if (h.record.id, h.record.memory) not in shown]
    if new:
        block = memory_message(new)
        pinned.put(latest_key, block, frozenset((h.record.id, h.record.memory) for h in new))
        if attach is None:
            out.insert(latest_at, block)
        else:
            out[latest_at] = attach(out[latest_at], block)
    return out
