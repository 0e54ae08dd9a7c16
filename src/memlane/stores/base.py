"""The store contract every backend implements, and the values that cross it.

A store is dumb on purpose: it filters, scores candidates by each signal and applies batches
of changes atomically with their history. Ranking (fusion), inference and scope rules live in
the engine, so every backend behaves the same and one test suite covers them all.

Writing a store: implement ``MemoryStore`` below and register a factory
(``memlane.registry.register("vector_store", "mine", factory)``; the factory gets the config's
``vector_store.config`` dict). What each part must guarantee:

- ``apply(changes, outbox_done=item)``: every change, its history rows and the removal of the
  outbox item (or of every item of a batch: ``outbox_done=[...]``) commit together or not at all. ADD of a text already in the exact scope (same
  ``hash``) and ADD of an id already stored are ``Applied("NONE")``, never an error.
- ``scope_lock(scope)``: mutual exclusion per exact scope across threads and, for shared
  databases, processes; the engine holds it around every read-modify-write.
- ``search``: filters applied inside the store, before the candidate cut; keys are the
  store's own and come back through ``fetch``. ``exact_scope`` restricts to the exact triple.
- Expiry: a record's ``expiration_date`` is stored with its instant (``expiry_instant``); the
  engine filters it at read time with the ``Unexpired`` filter node, only for scopes that
  ``has_expired`` says hold an expired memory (no background job deletes anything).
- ``outbox``: the durable queue (``memlane.stores.outbox.Outbox``) on the same database, so
  the commit above can include it; SQL stores reuse ``SQLOutbox``.
- ``bulk_load()``: a context for large imports (a store may rebuild an index once at the end);
  a ``contextlib.nullcontext()`` is a correct implementation.

Every built-in store passes ``tests/`` run with its backend; a new one should too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Hashable, Literal, Protocol, Sequence, runtime_checkable

import numpy as np

from memlane.query.filters import Filter
from memlane.records import HistoryEvent, MemoryRecord, Scope
from memlane.stores.outbox import Outbox, OutboxDone

#: ``progress(done, total)``: how far a long store operation has got
Progress = Callable[[int, int], None]
#: memories between two progress reports
PROGRESS_EVERY = 500


def tell_progress(progress: Progress | None, done: int, total: int) -> None:
    """``progress(done, total)`` every ``PROGRESS_EVERY`` items and at the last one."""
    if progress is not None and (done % PROGRESS_EVERY == 0 or done == total):
        progress(done, total)


@dataclass
class Change:
    """One decided change; ``apply`` writes a batch of them and their history in one transaction."""

    event: Literal["ADD", "UPDATE", "DELETE"]
    record: MemoryRecord
    vector: np.ndarray | None = None
    #: For an ADD that restores an exported memory: its history, written instead of a new ADD.
    history: list[HistoryEvent] | None = None
    #: Why, for the change's history row (an ADD made beside an immutable memory).
    reason: str | None = None
    #: For an UPDATE: the record's ``expiration_date`` replaces the stored one. Otherwise an
    #: UPDATE keeps the memory's expiry (reconciliation rewrites a text, not its lifetime), and
    #: ``immutable`` is only ever set by the ADD.
    sets_expiry: bool = False
    #: For an UPDATE: a new text another memory of the scope already holds fails the whole
    #: ``apply`` (``ValidationError``, nothing written) instead of leaving this memory as it is
    #: (``Applied("NONE")``): an all-or-nothing batch edit needs to know before anything commits.
    strict: bool = False


@dataclass
class Applied:
    event: Literal["ADD", "UPDATE", "DELETE", "NONE"]
    record: MemoryRecord
    previous_memory: str | None = None


@dataclass
class Candidates:
    """What a store found for one query, before the engine fuses and cuts.

    Keys are the store's own (opaque, hashable) handles; the engine fetches records with
    ``store.fetch`` only for what survives the cut, so a search loads ``limit`` records, not
    every candidate.
    """

    dense: dict[Hashable, float] = field(default_factory=dict)  # key -> cosine similarity
    keyword: dict[Hashable, float] = field(default_factory=dict)  # key -> BM25 (higher is better)


@runtime_checkable
class MemoryStore(Protocol):
    def bind_embedder(self, model_id: str, dims: int) -> None:
        """Record the embedding model on first use; refuse another model later."""
        ...

    def embedding_model(self) -> str | None:
        """The model recorded by ``bind_embedder``; None for a store not used yet."""
        ...

    def project_settings(self) -> dict[str, Any]:
        """The project's own settings (``custom_instructions``, ``custom_categories``); {} when unset."""
        ...

    def set_project_settings(self, settings: dict[str, Any]) -> None:
        ...

    def scope_lock(self, scope: Scope) -> ContextManager[None]:
        """Serialize adds to one exact scope across threads and processes."""
        ...

    def apply(
        self, changes: Sequence[Change], *, actor_id: str | None = None, outbox_done: OutboxDone | None = None
    ) -> list[Applied]:
        """Write changes and their history atomically; ``outbox_done`` (one claimed item or a
        batch's list) leaves in the same commit, ``LeaseLost`` (nothing written) when any was taken over."""
        ...

    def get(self, memory_id: str) -> MemoryRecord | None: ...

    def list(self, scope: Scope, filters: Filter | None, limit: int | None, *, oldest_first: bool = False,
             offset: int = 0) -> list[MemoryRecord]:
        """The scope's memories by creation time, newest first (or oldest first), skipping ``offset``."""
        ...

    def count_where(self, scope: Scope, filters: Filter | None) -> int:
        """How many memories ``list`` would give without a limit (one count, no rows read)."""
        ...

    def search(
        self,
        scope: Scope,
        filters: Filter | None,
        query_vector: np.ndarray,
        query_text: str,
        candidates: int,
        *,
        exact_scope: bool = False,
    ) -> Candidates: ...

    def fetch(self, keys: Sequence[Hashable]) -> dict[Hashable, MemoryRecord]:
        """Records for candidate keys of ``search``; keys deleted meanwhile are absent."""
        ...

    def history(self, memory_id: str) -> list[HistoryEvent]: ...

    def changes_since(self, since: str) -> dict[str, int]:
        """History events (ADD, UPDATE, DELETE) dated at or after ``since`` (ISO 8601 UTC), by event."""
        ...

    def delete_where(self, scope: Scope, filters: Filter | None, *, actor_id: str | None = None,
                     progress: Progress | None = None) -> int:
        """Delete every memory of the scope matching the filters in one transaction;
        ``progress(done, total)`` every ``PROGRESS_EVERY`` memories and at the end."""
        ...

    def has_expired(self, scope: Scope, now: str) -> bool:
        """Whether the scope holds a memory whose expiry instant is at or before ``now`` (one
        indexed probe: every search and list asks it before adding the ``Unexpired`` filter)."""
        ...

    def count(self) -> int: ...

    def entities(self) -> list[tuple[str, str, int]]:
        """``(type, id, memory count)`` for every user/agent/run with memories (mem0's users)."""
        ...

    #: the durable queue of exchanges to learn from, on the store's own connection, so that
    #: ``apply(..., outbox_done=item)`` removes the item in the commit that stores what was learnt
    outbox: Outbox

    def bulk_load(self) -> ContextManager[None]:
        """Wrap a large import (see the module docstring)."""
        ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class RecordIndex(MemoryStore, Protocol):
    """A SQL store used for records only, beside a vector engine that keeps the vectors
    (Qdrant): what that engine needs from it to search with the same semantics."""

    def keyword_candidates(
        self, scope: Scope, filters: Filter | None, query_text: str, candidates: int, *, exact_scope: bool = False
    ) -> dict[Hashable, float]: ...

    def ids_matching(
        self, scope: Scope, filters: Filter | None, *, exact_scope: bool = False, among: Sequence[str] | None = None
    ) -> list[str]:
        """Memory ids in the scope that pass the filter (only those in ``among`` when given)."""
        ...

    def keys_for(self, memory_ids: Sequence[str]) -> dict[str, Hashable]:
        """The ``search``/``fetch`` keys of these memories; unknown ids are absent."""
        ...

    def apply(
        self, changes: Sequence[Change], *, actor_id: str | None = None, outbox_done: OutboxDone | None = None,
        track_sync: bool = False,
    ) -> list[Applied]:
        """As ``MemoryStore.apply``; ``track_sync`` also lists the changed memories as not yet
        acknowledged by the vector engine, in the same transaction."""
        ...

    def unsynced_ids(self) -> list[str]: ...

    def clear_unsynced(self, memory_ids: Sequence[str]) -> None: ...

    def vectors_for(self, memory_ids: Sequence[str]) -> dict[str, tuple[MemoryRecord, np.ndarray]]:
        """Records and their vectors (kept here too: the source the vector engine is re-synced from)."""
        ...

    def ids_page(self, after: str | None, limit: int) -> list[tuple[str, str]]:
        """``(id, updated_at)`` of up to ``limit`` memories with ids after ``after``, by id."""
        ...


def scope_where(
    scope: Scope, filters: Filter | None, *, exact_scope: bool, mark: str,
    compile_filter: Callable[[Filter], tuple[str, list[Any]]], always: str,
) -> tuple[str, list[Any]]:
    """The WHERE clause every SQL store shares: the scope (the exact triple, or the given ids),
    then the compiled filter. ``mark`` is the driver's placeholder, ``always`` its TRUE."""
    clauses: list[str] = []
    params: list[Any] = []
    if exact_scope:
        clauses.append(f"m.scope_key = {mark}")
        params.append(scope.key)
    else:
        for name, value in scope.as_dict().items():
            clauses.append(f"m.{name} = {mark}")
            params.append(value)
    if filters is not None:
        sql, fparams = compile_filter(filters)
        clauses.append(sql)
        params.extend(fparams)
    return (" AND ".join(clauses) or always), params
