"""Batch edits (mem0 Platform's ``batch_update`` / ``batch_delete``): up to ``MAX_BATCH``
memories in one call, **all or nothing**.

Every item is checked before anything is written: the shape, each text and metadata against
the same limits as a single update, no memory twice, and every id a memory of this store. Any
problem refuses the whole batch with a ``ValidationError`` (HTTP 400) that names the item.
Then the changes go to the store in one ``apply``: one transaction, a history event for each
memory, and the webhooks' deliveries queued in it. An update whose new text another memory of
its scope already holds (counting the batch's earlier items) fails that transaction, so nothing
of the batch is written either.

Locking: a batch within one scope holds that scope's lock (as a single update does), so a
concurrent learner cannot rewrite its memories between the read and the write. A batch across
scopes runs in its one transaction without scope locks, as ``delete_all`` does: holding many
scopes' locks at once would tie up a PostgreSQL connection each.
"""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from typing import Any, Callable, ContextManager, Mapping, Sequence

import numpy as np

from memlane.config import MemlaneConfig
from memlane.engine.identity import content_hash
from memlane.engine.validation import check_metadata, check_text
from memlane.errors import NotFoundError, ValidationError
from memlane.records import MemoryRecord, utc_now
from memlane.stores.base import Applied, Change, MemoryStore

#: mem0's limit, and memlane's
MAX_BATCH = 1000
#: unknown ids named in one refusal, at most
SHOWN_UNKNOWN = 5


def batch_ids(memories: Any, *, action: str) -> list[tuple[int, str, Mapping[str, Any]]]:
    """``(index, memory_id, item)`` of each item of a batch, checked: a list of 1 to
    ``MAX_BATCH`` objects, each with a ``memory_id`` string (a plain id string is an item too,
    for ``batch_delete``), no id twice."""
    if not isinstance(memories, list):
        raise ValidationError(f"memories must be a list of objects with a memory_id, got {type(memories).__name__}",
                              param="memories", code="invalid_batch")
    if not memories:
        raise ValidationError(f"memories is empty: a batch {action} takes 1 to {MAX_BATCH} memories", param="memories",
                              code="invalid_batch")
    if len(memories) > MAX_BATCH:
        raise ValidationError(f"memories holds {len(memories)} items; a batch {action} takes at most {MAX_BATCH}: send it in parts",
                              param="memories", code="batch_too_large")
    seen: dict[str, int] = {}
    out = []
    for index, item in enumerate(memories):
        if isinstance(item, str) and action == "delete":
            item = {"memory_id": item}
        if not isinstance(item, Mapping):
            raise ValidationError(f"memories[{index}] must be an object with a memory_id, got {type(item).__name__}",
                                  param=f"memories[{index}]", code="invalid_batch")
        memory_id = item.get("memory_id")
        if not isinstance(memory_id, str) or not memory_id:
            raise ValidationError(f"memories[{index}].memory_id must be a non-empty string", param=f"memories[{index}].memory_id",
                                  code="invalid_batch")
        if memory_id in seen:
            raise ValidationError(f"memories[{index}].memory_id {memory_id!r} is also memories[{seen[memory_id]}]'s: a batch"
                                  " names each memory once", param=f"memories[{index}].memory_id", code="duplicate_memory_id")
        seen[memory_id] = index
        out.append((index, memory_id, item))
    return out


def _records(store: MemoryStore, items: Sequence[tuple[int, str, Mapping[str, Any]]]) -> dict[str, MemoryRecord]:
    """The stored record of every item; the whole batch is refused if any id is unknown."""
    found: dict[str, MemoryRecord] = {}
    unknown: list[tuple[int, str]] = []
    for index, memory_id, _ in items:
        record = store.get(memory_id)
        if record is None:
            unknown.append((index, memory_id))
        else:
            found[memory_id] = record
    if unknown:
        index, memory_id = unknown[0]
        more = f" (and {len(unknown) - 1} more: {', '.join(repr(i) for _, i in unknown[1:SHOWN_UNKNOWN])}"  \
               f"{', ...' if len(unknown) > SHOWN_UNKNOWN else ''})" if len(unknown) > 1 else ""
        raise ValidationError(f"memories[{index}].memory_id {memory_id!r} is not a memory here{more}; nothing was changed",
                              param=f"memories[{index}].memory_id", code="memory_not_found")
    return found


def _scope_lock(store: MemoryStore, records: Mapping[str, MemoryRecord]) -> ContextManager[Any]:
    scopes = {r.scope.key: r.scope for r in records.values()}
    return store.scope_lock(next(iter(scopes.values()))) if len(scopes) == 1 else nullcontext()


def _applied(store: MemoryStore, changes: list[Change]) -> list[Applied]:
    """One ``apply``; a memory deleted meanwhile refuses the batch as an unknown id does."""
    try:
        return store.apply(changes)
    except NotFoundError as exc:
        raise ValidationError(f"{exc.message} (deleted while the batch was checked); nothing was changed", param="memories",
                              code="memory_not_found") from None


def _refuse_immutable(index: int, record: MemoryRecord) -> None:
    """mem0: an immutable memory is deleted and added again, never updated."""
    if record.immutable:
        raise ValidationError(f"memories[{index}]: memory {record.id!r} is immutable (delete it and add it again); nothing was changed",
                              param=f"memories[{index}].memory_id", code="immutable_memory")


def _result(a: Applied) -> dict[str, Any]:
    return {"id": a.record.id, "memory": a.record.memory, "event": a.event, "previous_memory": a.previous_memory}


def batch_update(store: MemoryStore, embed: Callable[[Sequence[str]], np.ndarray], config: MemlaneConfig,
                 memories: Any) -> dict[str, Any]:
    """Each item ``{"memory_id", "text"?, "metadata"?}`` (``data`` is read as ``text``, as in a
    single update): a new text and/or new metadata (replacing the old, as ``update`` does)."""
    items = batch_ids(memories, action="update")
    wanted: dict[str, tuple[int, str | None, dict[str, Any] | None]] = {}
    for index, memory_id, item in items:
        text = item.get("text") if item.get("text") is not None else item.get("data")
        metadata = item.get("metadata")
        if text is None and metadata is None:
            raise ValidationError(f"memories[{index}]: give text and/or metadata", param=f"memories[{index}]", code="nothing_to_update")
        if text is not None:
            check_text(text, f"memories[{index}].text", config.server.max_memory_chars)
            if not text.strip():
                raise ValidationError(f"memories[{index}].text must not be blank", param=f"memories[{index}].text")
        try:
            checked = None if metadata is None else check_metadata(metadata, config.server.max_metadata_bytes)
        except ValidationError as exc:
            raise ValidationError(f"memories[{index}].{exc.message}", param=f"memories[{index}].metadata", code=exc.code) from None
        wanted[memory_id] = (index, None if text is None else text.strip(), checked)
    records = _records(store, items)
    with _scope_lock(store, records):
        if len({r.scope.key for r in records.values()}) == 1:
            records = _records(store, items)  # read again under the lock: what the update is decided on
        now = utc_now()
        updated: list[MemoryRecord] = []
        for index, memory_id, _ in items:
            record = records[memory_id]
            _refuse_immutable(index, record)
            _, text, metadata = wanted[memory_id]
            new_text = record.memory if text is None else text
            updated.append(dataclasses.replace(record, memory=new_text, hash=content_hash(new_text),
                                               metadata=record.metadata if metadata is None else metadata, updated_at=now))
        fresh = [u.memory for u, (_, memory_id, _) in zip(updated, items) if u.memory != records[memory_id].memory]
        vectors = dict(zip(fresh, embed(fresh))) if fresh else {}
        changes = [Change("UPDATE", u, vectors.get(u.memory), strict=True) for u in updated]
        applied = _applied(store, changes)
    return {"message": f"Successfully updated {len(applied)} memories", "results": [_result(a) for a in applied]}


def batch_delete(store: MemoryStore, memories: Any) -> dict[str, Any]:
    """Each item ``{"memory_id"}`` (or the id itself); their history stays, as ``delete``'s."""
    items = batch_ids(memories, action="delete")
    records = _records(store, items)
    with _scope_lock(store, records):
        if len({r.scope.key for r in records.values()}) == 1:
            records = _records(store, items)
        applied = _applied(store, [Change("DELETE", records[memory_id]) for _, memory_id, _ in items])
    return {"message": f"Successfully deleted {len(applied)} memories", "results": [_result(a) for a in applied]}


__all__ = ["MAX_BATCH", "batch_delete", "batch_ids", "batch_update"]
