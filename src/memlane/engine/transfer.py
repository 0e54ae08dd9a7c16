"""Export and import: a store's memories out as records, and such records back into a store.

One record per memory, with its history: the JSONL line format of ``memlane memories export``
/ ``import`` and the server's export (and of mem0's export jobs, ``/v1/exports/``). Expired
memories are exported too, with their ``expiration_date``, and immutable ones with ``immutable``. An export runs oldest first, the order an import writes
them back in, so each conversation is rebuilt in its own order. An import keeps ids, scopes,
metadata, timestamps and history but embeds the text anew with the importing engine's embedder:
that is how a store moves to another embedding model.
"""

from __future__ import annotations

import uuid
from contextlib import nullcontext
from typing import Any, Callable, ContextManager, Iterable, Iterator, Mapping, Sequence

import numpy as np

from memlane.config import ServerConfig
from memlane.engine.identity import content_hash
from memlane.engine.validation import check_encodable, check_expiration_date, check_flag, check_metadata, check_scope_id, check_text
from memlane.errors import ScopeError, ValidationError
from memlane.query.filters import SCOPE_FIELDS, Filter
from memlane.records import HistoryEvent, MemoryRecord, Scope, utc_now
from memlane.stores.base import Change, MemoryStore
from memlane.stores.feedback import FEEDBACK_VALUES

#: Imports at least this big go through the store's bulk load.
BULK_LOAD_ROWS = 5_000


def export_records(store: MemoryStore, scope: Scope, parsed: Filter | None) -> Iterator[dict[str, Any]]:
    """Every memory of ``scope`` (an empty scope: the whole store) matching ``parsed``, with its
    history, oldest first."""
    feedback = getattr(store, "feedback", None)
    for record in reversed(store.list(scope, parsed, None)):
        line = {**record.to_dict(), "history": [e.to_dict() for e in store.history(record.id)]}
        given = feedback.of(record.id) if feedback is not None else []
        if given:  # mem0's feedback on it, oldest first (restored by an import)
            line["feedback"] = [f.to_dict() for f in given]
        yield line


def import_records(store: MemoryStore, embed: Callable[[Sequence[str]], np.ndarray], records: Iterable[Mapping[str, Any]],
                   *, limits: ServerConfig, batch_size: int) -> dict[str, int]:
    """Write exported records into ``store`` in batches of ``batch_size``. Each record is checked
    against ``limits`` as it is read, so a bad one stops the import before its batch is written;
    one whose id or text its scope already holds is counted as skipped."""
    counts = {"imported": 0, "skipped": 0}
    batch: list[Mapping[str, Any]] = []

    def flush() -> None:
        if not batch:
            return
        vectors = embed([str(item["memory"]) for item in batch])
        changes = [_import_change(item, vector) for item, vector in zip(batch, vectors)]
        for applied in store.apply(changes):
            counts["imported" if applied.event == "ADD" else "skipped"] += 1
        _restore_feedback(store, batch, changes)
        batch.clear()

    for index, item in enumerate(records):
        if not isinstance(item, Mapping) or not isinstance(item.get("memory"), str) or not item["memory"].strip():
            raise ValidationError(f"record {index}: needs a non-empty 'memory' string", param="records")
        if not any(item.get(f) for f in SCOPE_FIELDS):
            raise ScopeError(f"record {index}: needs at least one of user_id, agent_id, run_id", param="records")
        try:
            for field in SCOPE_FIELDS:
                check_scope_id(field, item.get(field) or None)
            check_text(item["memory"], "memory", limits.max_memory_chars)
            check_metadata(item.get("metadata"), limits.max_metadata_bytes)
            check_expiration_date(item.get("expiration_date"))
            check_flag(False if item.get("immutable") is None else item["immutable"], "immutable")  # mem0's records say false
            check_encodable(item, "the record")
            _check_feedback_rows(item.get("feedback"))
        except ValidationError as exc:
            raise ValidationError(f"record {index}: {exc.message}", param="records", code=exc.code) from None
        batch.append(item)
        if len(batch) >= batch_size:
            flush()
    flush()
    return counts


def _check_feedback_rows(rows: Any) -> None:
    if rows is None:
        return
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
        raise ValidationError("feedback must be a list of objects", param="feedback")
    for r in rows:
        if not isinstance(r.get("id"), str) or not isinstance(r.get("created_at"), str):
            raise ValidationError("each feedback needs its id and created_at (as an export writes them)", param="feedback")
        if r.get("feedback") is not None and r.get("feedback") not in FEEDBACK_VALUES:
            raise ValidationError(f"feedback {r.get('feedback')!r} is not one of {', '.join(FEEDBACK_VALUES)}", param="feedback")
        if r.get("feedback_reason") is not None and not isinstance(r.get("feedback_reason"), str):
            raise ValidationError("feedback_reason must be a string", param="feedback")


def _restore_feedback(store: MemoryStore, items: Sequence[Mapping[str, Any]], changes: Sequence[Change]) -> None:
    """Exported feedback rows back with their memory (a row already held is skipped)."""
    log = getattr(store, "feedback", None)
    rows = [{**f, "memory_id": change.record.id} for item, change in zip(items, changes) for f in (item.get("feedback") or [])]
    if log is not None and rows:
        log.restore(rows)


def _import_change(item: Mapping[str, Any], vector: np.ndarray) -> Change:
    now = utc_now()
    text = str(item["memory"]).strip()
    record = MemoryRecord(
        id=str(item.get("id") or uuid.uuid4()), memory=text, hash=content_hash(text),
        metadata=check_metadata(item.get("metadata")), user_id=item.get("user_id"), agent_id=item.get("agent_id"),
        run_id=item.get("run_id"), created_at=str(item.get("created_at") or now), updated_at=str(item.get("updated_at") or now),
        expiration_date=check_expiration_date(item.get("expiration_date")), immutable=bool(item.get("immutable")),
    )
    history = None
    if isinstance(item.get("history"), list) and item["history"]:
        history = [
            HistoryEvent(id=str(e.get("id") or uuid.uuid4()), memory_id=record.id, event=str(e.get("event", "ADD")),
                         old_memory=e.get("old_memory"), new_memory=e.get("new_memory"), actor_id=e.get("actor_id"),
                         created_at=str(e.get("created_at") or now), reason=None if e.get("reason") is None else str(e["reason"]))
            for e in item["history"]
        ]
    return Change("ADD", record, vector, history=history)


def bulk_loading(store: MemoryStore, rows: int) -> ContextManager[None]:
    """Around an import of ``rows`` records: a big one lets the store rebuild its index once at
    the end instead of row by row (PostgreSQL's HNSW)."""
    return store.bulk_load() if rows >= BULK_LOAD_ROWS else nullcontext()
