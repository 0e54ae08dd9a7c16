"""memlane's own fields of a chat request, in one place.

A chat request is OpenAI's body plus ``user_id agent_id run_id metadata filters limit top_k
include_memories``. The embedded client takes them as keyword arguments, the hosted client sends
them to the server in the body (``extra_body``), and the server takes them out of the body (or
the ``X-Memlane-*`` headers): all three go through ``MemlaneFields``, so a new field is added once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, MutableMapping

#: The headers that carry a scope for clients that cannot add body fields.
SCOPE_HEADERS = {"user_id": "x-memlane-user-id", "agent_id": "x-memlane-agent-id", "run_id": "x-memlane-run-id"}


@dataclass
class MemlaneFields:
    """What memlane reads from a chat request; everything else goes to the model untouched.
    Values are checked where they are used (the engine), so every face reports the same errors."""

    user_id: Any = None
    agent_id: Any = None
    run_id: Any = None
    #: stored with what is learnt; never sent upstream
    metadata: Any = None
    #: restricts what is recalled
    filters: Any = None
    limit: Any = None
    #: mem0 2.x's name for ``limit``
    top_k: Any = None
    include_memories: Any = False

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def pop_from(cls, body: MutableMapping[str, Any], headers: Mapping[str, str] | None = None) -> MemlaneFields:
        """Take memlane's fields out of an OpenAI request body (what remains goes upstream);
        a scope header fills a scope field the body does not set."""
        taken = {name: body.pop(name) for name in cls.names() if name in body}
        for name, header in SCOPE_HEADERS.items():
            if taken.get(name) is None and headers is not None and headers.get(header):
                taken[name] = headers[header]
        return cls(**taken)

    def scope(self) -> dict[str, Any]:
        return {k: v for k, v in (("user_id", self.user_id), ("agent_id", self.agent_id), ("run_id", self.run_id)) if v is not None}

    def as_body(self) -> dict[str, Any]:
        """The fields that were given, for the body sent to a memlane server."""
        return {k: v for k, v in asdict(self).items() if v is not None and not (k == "include_memories" and v is False)}
