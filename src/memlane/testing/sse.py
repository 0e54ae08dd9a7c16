"""What the scripted upstream's named-event streams share: events, fault markers, SSE framing."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

#: One server-sent event: its name and its JSON data.
Event = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Piece:
    """Marks where the ``number``-th streamed delta is about to go, so faults can strike there."""

    number: int


def stream_pieces(text: str) -> list[str]:
    """How a scripted text streams: word by word, each word with the whitespace after it."""
    return re.findall(r"\S+\s*|\s+", text)


def encode(event: Event) -> bytes:
    name, data = event
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
