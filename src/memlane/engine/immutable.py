"""Immutable memories: what reconciliation does instead of rewriting one.

A memory added with ``immutable: true`` is never updated or deleted by learning. When the
memory LLM decides to UPDATE one, the new text is added as a memory of its own beside it; when
it decides to DELETE one, the decision's text (when it is not the memory's own, restated) is
added the same way. The added memory's history row says why. A direct ``update`` of an
immutable memory is refused (mem0's Platform: such a memory is deleted and added again instead);
``delete`` is allowed.
"""

from __future__ import annotations

from memlane.engine import inference
from memlane.errors import ValidationError
from memlane.records import MemoryRecord


def kept_beside(decision: inference.Decision, target: MemoryRecord) -> inference.Decision:
    """The ADD that replaces an UPDATE or DELETE of the immutable ``target``. A DELETE whose text
    is the target's own becomes an ADD of that text, which the exact-duplicate rule then drops:
    nothing changes."""
    verb = "updated" if decision.event == "UPDATE" else "deleted"
    reason = (f"added beside immutable memory {target.id} ({target.memory!r}), which reconciliation would have {verb}")
    return inference.Decision("ADD", decision.text or target.memory, None, reason=reason)


def refuse_update(record: MemoryRecord) -> None:
    """A direct update of an immutable memory is a 400 that says what to do instead."""
    if record.immutable:
        raise ValidationError(f"memory {record.id!r} is immutable: it cannot be updated; delete it and add the new text "
                              "as a new memory instead", param="memory_id", code="immutable_memory")
