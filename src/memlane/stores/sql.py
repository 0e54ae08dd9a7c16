"""What the SQL stores (SQLite, PostgreSQL) share, written once.

Both keep the same tables (``memories``, ``history``, ``store_info``, ``outbox``,
``vector_sync``) with the same columns; they differ in the driver, the placeholder, how a list
parameter is written, how text is ordered, the memories' key column and how vectors are stored.
``SQLStore`` holds every method whose SQL is the same up to those differences; each store
subclass supplies its connections (``_write``/``_read``) and the few dialect attributes below,
and keeps only what is truly its own (search, writes with their indexes, migrations).
"""

from __future__ import annotations

import functools
import json
import logging
import queue
import threading
import uuid
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Iterator, Sequence

import numpy as np

from memlane.errors import EmbedderMismatchError, StoreError
from memlane.query.filters import Filter
from memlane.query.keywords import query_terms
from memlane.query.tokens import fts5_tokens
from memlane.records import HistoryEvent, MemoryRecord, Scope, expiry_instant
from memlane.stores.base import Applied, scope_where
from memlane.stores.conversation import ConversationContext
from memlane.stores.feedback import SQLFeedback
from memlane.stores.keyword_index import Context, KeywordIndexes, ScopeKeywords
from memlane.stores.outbox import SQLOutbox
from memlane.stores.webhooks import SQLWebhooks

#: a catch-up reads at most this many scope versions of the change journal; further behind, the
#: index is rebuilt (the journal keeps ``JOURNAL_KEEP`` versions a key, pruned every 64)
MAX_CATCH_UP = 256
JOURNAL_KEEP = 512
#: a write touching more memories than this journals only that it happened (a big import): the
#: indexes of its scopes are rebuilt rather than caught up row by row
JOURNAL_MAX_ROWS = 2000


log = logging.getLogger(__name__)


def version_keys(user_id: str | None, agent_id: str | None, run_id: str | None) -> list[str]:
    """The ``scope_versions`` keys of a memory (or of a search scope): one per id it has."""
    return [f"{p}:{v}" for p, v in (("u", user_id), ("a", agent_id), ("r", run_id)) if v]


@contextmanager
def mapped_errors(action: str, *, backend: str, where: str, unreachable: tuple[type[BaseException], ...],
                  failed: tuple[type[BaseException], ...]) -> Iterator[None]:
    """The one translation of driver errors into ``StoreError``, naming what was being done:
    ``unreachable`` errors say the database cannot be reached, ``failed`` ones that it refused."""
    try:
        yield
    except unreachable as exc:
        raise StoreError(f"{backend} at {where} is unreachable while {action}: {exc}".strip()) from exc
    except failed as exc:
        raise StoreError(f"{backend} store failed while {action}: {exc}".strip()) from exc


#: what ``record_from_row`` reads: a search's fetch names them rather than ``*``, which also
#: reads each row's keyword context (the neighbouring turns, often longer than the memory)
RECORD_COLUMNS = "id, memory, hash, metadata, user_id, agent_id, run_id, created_at, updated_at, expiration_date, immutable"


def record_from_row(row: Any) -> MemoryRecord:
    metadata = row["metadata"]
    return MemoryRecord(
        id=row["id"], memory=row["memory"], hash=row["hash"],
        metadata=json.loads(metadata) if isinstance(metadata, str) else dict(metadata or {}),
        user_id=row["user_id"], agent_id=row["agent_id"], run_id=row["run_id"],
        created_at=row["created_at"], updated_at=row["updated_at"],
        expiration_date=row["expiration_date"], immutable=bool(row["immutable"]),
    )


class SQLStore(ConversationContext):
    """Base class of the SQL stores; see the module docstring for what a subclass supplies."""

    #: the driver's placeholder
    mark: str
    #: the memories' own key column (the ``search``/``fetch`` keys)
    key: str
    #: the vectors table's column that joins it to ``memories.<key>``
    key_in_vectors: str
    #: appended to a text column to order it byte-wise, as every store must
    text_order: str = ""
    #: LIMIT's "no limit", for an OFFSET without a LIMIT (SQLite needs a LIMIT before OFFSET)
    no_limit: str = "ALL"
    #: the SQL for TRUE
    true: str = "TRUE"
    #: where the tables live: ``""`` or ``'"schema".'``
    prefix: str = ""
    #: how ``bind_embedder``'s mismatch error names this store
    label: str
    #: vector width, once an embedder is bound
    _dims: int | None = None
    #: the store's validated options (``embedding_model_dims`` is checked at bind)
    options: Any
    #: the in-process keyword indexes (``memlane.stores.keyword_index``); None: the store's own
    #: full-text query scores keywords
    _keywords: KeywordIndexes | None = None
    #: the thread that builds big scopes' indexes, and its queue
    _builder: threading.Thread | None = None
    _builder_lock = threading.Lock()
    _builds: queue.Queue[Any]

    # -- what a subclass supplies ------------------------------------------------------------

    def _write(self, action: str) -> AbstractContextManager[Any]:
        """A connection inside a write transaction; errors mapped to ``StoreError``."""
        raise NotImplementedError

    def _read(self, action: str) -> AbstractContextManager[Any]:
        """A connection for reads; errors mapped to ``StoreError``."""
        raise NotImplementedError

    def _compile(self, filters: Filter) -> tuple[str, list[Any]]:
        raise NotImplementedError

    def _vector_value(self, stored: Any) -> np.ndarray:
        """A stored vector as float32."""
        raise NotImplementedError

    def _first_bind(self, conn: Any, dims: int) -> None:
        """Called in the transaction that records the first embedder (PostgreSQL sizes its vectors table)."""

    def _lock_bind(self, conn: Any) -> None:
        """Serialise ``bind_embedder`` across processes where the transaction alone does not."""

    # -- shared helpers ----------------------------------------------------------------------

    def _t(self, table: str) -> str:
        return self.prefix + table

    def _in(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column`` is one of ``values`` (never empty-list SQL: callers skip empty lists)."""
        return f"{column} IN ({', '.join(self.mark for _ in values)})", list(values)

    def _where(self, scope: Scope, filters: Filter | None, *, exact_scope: bool = False) -> tuple[str, list[Any]]:
        return scope_where(scope, filters, exact_scope=exact_scope, mark=self.mark, compile_filter=self._compile, always=self.true)

    def _sql(self, text: str) -> str:
        return text.replace("{t}", self.prefix).replace("?", self.mark)

    def _touched_by(self, conn: Any, applied: Any, before: set[tuple[str, Any]]) -> set[tuple[str, Any]]:
        """Where ``applied`` changed the conversation (see ``memlane.stores.conversation``):
        ``before`` is the memory's position read before an UPDATE or DELETE."""
        if applied.event == "ADD":
            return self._positions(conn, [applied.record.id])
        if applied.event == "DELETE" or (applied.event == "UPDATE" and applied.previous_memory != applied.record.memory):
            return before
        return set()

    # -- versions and the change journal: what keeps in-process indexes in step -------------------

    def _bump(self, conn: Any, keys: set[str], rewritten: set[str]) -> None:
        """Version every touched scope key; count a rewrite where a vector changed or went away."""
        conn.cursor().executemany(self._sql(
            "INSERT INTO {t}scope_versions AS sv (key, version, rewrites) VALUES (?, 1, ?)"
            " ON CONFLICT (key) DO UPDATE SET version = sv.version + 1, rewrites = sv.rewrites + excluded.rewrites"),
            [(k, int(k in rewritten)) for k in sorted(keys | rewritten)])

    def _journal(self, conn: Any, keys: set[str], rows: set[tuple[str, Any]], ids_of: dict[str, list[str]]) -> None:
        """After ``_bump`` in the same transaction: note, under each bumped key's new version,
        the memories whose keyword text (memory or context) changed. ``rows`` are their
        ``(scope_key, key)``; ``ids_of`` maps a scope_key to its version keys. Every bumped
        version gets a row (key 0: nothing to re-read), so a reader can tell a complete journal
        from a gap (a reset, a pruned stretch, a big import) and rebuild instead."""
        if not keys:
            return
        clause, params = self._in("key", sorted(keys))
        versions = {r["key"]: int(r["version"]) for r in conn.execute(
            f"SELECT key, version FROM {self._t('scope_versions')} WHERE {clause}", params).fetchall()}
        entries = {(k, versions[k], 0) for k in keys if k in versions}
        if len(rows) <= JOURNAL_MAX_ROWS:
            for scope_key, row in rows:
                entries.update((k, versions[k], row) for k in ids_of.get(scope_key, ()) if k in versions)
        conn.cursor().executemany(self._sql("INSERT INTO {t}scope_changes (key, version, row_key) VALUES (?, ?, ?)"
                                            " ON CONFLICT DO NOTHING"), sorted(entries))
        old = [(k, v - JOURNAL_KEEP) for k, v in versions.items() if v % 64 == 0 and v > JOURNAL_KEEP]
        if old:
            conn.cursor().executemany(self._sql("DELETE FROM {t}scope_changes WHERE key = ? AND version <= ?"), old)

    # -- keyword scoring from the in-process index ----------------------------------------------

    def _indexed_keywords(self, conn: Any, scope: Scope, filters: Filter | None, query_text: str, candidates: int, *,
                          exact_scope: bool, allowed: np.ndarray | None = None) -> dict[Any, float] | None:
        """BM25 candidates from the scope's in-process index, brought up to date first; None
        when there is none (turned off, or a scope with no id): the caller queries its own
        full-text index. ``allowed``: the keys that pass ``filters``, when the caller has them."""
        if self._keywords is None or scope.is_empty():
            return None
        words = query_terms(query_text)
        if not words:
            return {}
        stems = [t for tokens in fts5_tokens().tokens_of(words) for t in tokens]
        entry = self._keyword_entry(conn, scope, exact_scope)
        if entry is None:
            return None
        if filters is not None and allowed is None:
            where, params = self._where(scope, filters, exact_scope=exact_scope)
            rows = conn.execute(f"SELECT m.{self.key} AS k FROM {self._t('memories')} m WHERE {where}", params).fetchall()
            allowed = np.fromiter((r["k"] for r in rows), dtype=np.int64, count=len(rows))
        with entry.lock:  # every term: see the SQLite store's ``common_term_share``
            return entry.search(stems, candidates, allowed=allowed)

    def _keyword_entry(self, conn: Any, scope: Scope, exact_scope: bool) -> ScopeKeywords | None:
        """The scope's index at the version ``conn`` sees (or newer): caught up from the change
        journal when it is complete since the index's version, else rebuilt from the rows; for
        a scope of more than ``keyword_index_inline_rows`` memories, rebuilt in the background
        (a 10k-memory real-text scope: ~0.6 s) and None until then."""
        assert self._keywords is not None
        first = version_keys(scope.user_id, scope.agent_id, scope.run_id)[0]  # every change in scope bumps it
        row = conn.execute(self._sql("SELECT version FROM {t}scope_versions WHERE key = ?"), (first,)).fetchone()
        current = int(row["version"]) if row else 0
        cache_key = (exact_scope, scope.user_id, scope.agent_id, scope.run_id)
        entry = self._keywords.entry(cache_key)
        if entry.building:
            return None
        with entry.lock:
            if entry.version is not None and entry.version >= current:
                return entry  # current, or newer than this snapshot (another thread caught it up)
            if entry.version is not None and current - entry.version <= MAX_CATCH_UP \
                    and self._catch_up(conn, entry, scope, exact_scope, first, current):
                entry.version = current
            elif self._scope_size(conn, scope, exact_scope) <= self.options.keyword_index_inline_rows:
                self._rebuild(conn, entry, scope, exact_scope)
                entry.version = current
            else:  # a big scope: built beside the searches, which use the full-text query meanwhile
                entry.building = True
                self._build_later(cache_key, entry, scope, exact_scope)
                return None
        self._keywords.account(cache_key, entry)
        return entry

    def _scope_size(self, conn: Any, scope: Scope, exact_scope: bool) -> int:
        """The scope's memories, counted up to just past ``keyword_index_inline_rows``."""
        where, params = self._where(scope, None, exact_scope=exact_scope)
        limit = int(self.options.keyword_index_inline_rows) + 1
        return int(conn.execute(f"SELECT count(*) AS n FROM (SELECT 1 FROM {self._t('memories')} m WHERE {where} LIMIT {limit}) x",
                                params).fetchone()["n"])

    def _build_later(self, cache_key: Any, entry: ScopeKeywords, scope: Scope, exact_scope: bool) -> None:
        """Queue a scope's index for the store's builder thread (started on first use)."""
        with self._builder_lock:
            if self._builder is None or not self._builder.is_alive():
                self._builder = threading.Thread(target=self._build_loop, name="memlane-keyword-index", daemon=True)
                self._builder.start()
            self._builds.put((cache_key, entry, scope, exact_scope))

    def _build_loop(self) -> None:
        """Build queued indexes one at a time, each from one read of its scope: the version first,
        then the rows (rows newer than the version are read again by the next catch-up)."""
        assert self._keywords is not None
        while True:
            cache_key, entry, scope, exact_scope = self._builds.get()
            try:
                with self._read("building a keyword index") as conn:
                    first = version_keys(scope.user_id, scope.agent_id, scope.run_id)[0]
                    row = conn.execute(self._sql("SELECT version FROM {t}scope_versions WHERE key = ?"), (first,)).fetchone()
                    with entry.lock:
                        self._rebuild(conn, entry, scope, exact_scope)
                        entry.version = int(row["version"]) if row else 0
                self._keywords.account(cache_key, entry)
            except Exception as exc:  # noqa: BLE001 - the next search of the scope queues it again
                log.warning("building the keyword index of a scope failed: %s", exc)
                entry.version = None
            finally:
                entry.building = False

    def _catch_up(self, conn: Any, entry: ScopeKeywords, scope: Scope, exact_scope: bool, first: str, current: int) -> bool:
        """Re-read the memories the journal lists since ``entry.version``; False if it has a gap."""
        assert entry.version is not None
        rows = conn.execute(self._sql("SELECT version, row_key FROM {t}scope_changes WHERE key = ? AND version > ?"),
                            (first, entry.version)).fetchall()
        if len({int(r["version"]) for r in rows if int(r["version"]) <= current}) != current - entry.version:
            return False
        keys = sorted({r["row_key"] for r in rows if r["row_key"]})
        if keys:
            where, params = self._where(scope, None, exact_scope=exact_scope)
            clause, values = self._in(f"m.{self.key}", keys)
            found = self._keyword_rows(conn, f"{where} AND {clause}", params + values)
            present = {row[0] for row in found}
            for key in keys:
                if key not in present:
                    entry.remove(key)
            for key, memory, context, ids, _ in found:
                entry.put(key, memory, context, ids)
        return True

    def _rebuild(self, conn: Any, entry: ScopeKeywords, scope: Scope, exact_scope: bool) -> None:
        """The scope's index from its rows. A context that is its neighbours' texts joined (as
        ``ConversationContext`` writes them) is indexed from their tokens, not tokenised again."""
        where, params = self._where(scope, None, exact_scope=exact_scope)
        rows = sorted(self._keyword_rows(conn, where, params), key=lambda r: (r[4], r[0]))
        contexts: list[Context] = []
        for i, (_, _, context, _, scope_key) in enumerate(rows):
            before = i - 1 if i and rows[i - 1][4] == scope_key else None
            after = i + 1 if i + 1 < len(rows) and rows[i + 1][4] == scope_key else None
            if not context:
                contexts.append(())
            elif before is not None and after is not None and context == f"{rows[before][1]} {rows[after][1]}":
                contexts.append((before, after))
            elif before is not None and context == rows[before][1]:
                contexts.append((before,))
            elif after is not None and context == rows[after][1]:
                contexts.append((after,))
            else:
                contexts.append(context)
        entry.build([r[0] for r in rows], [r[1] for r in rows], contexts, [r[3] for r in rows])

    def _keyword_rows(self, conn: Any, where: str, params: list[Any]) -> list[tuple[Any, str, str, int, str]]:
        """``(key, memory, context, scope id count, scope_key)`` of the memories ``where`` selects."""
        rows = conn.execute(f"SELECT m.{self.key} AS k, m.memory, m.context, m.user_id, m.agent_id, m.run_id, m.scope_key"
                            f" FROM {self._t('memories')} m WHERE {where}", params).fetchall()
        return [(r["k"], r["memory"], r["context"] or "", (r["user_id"] is not None) + (r["agent_id"] is not None)
                 + (r["run_id"] is not None), r["scope_key"]) for r in rows]

    # -- feedback and webhooks (memlane.stores.feedback, memlane.stores.webhooks) ------------------

    @functools.cached_property
    def feedback(self) -> SQLFeedback:
        return SQLFeedback(self._t("feedback"), self._write, self._read, mark=self.mark)

    @functools.cached_property
    def webhooks(self) -> SQLWebhooks:
        return SQLWebhooks(self._t, self._write, self._read, mark=self.mark, **self._webhook_dialect())

    def _webhook_dialect(self) -> dict[str, Any]:
        """``skip_locked`` / ``claim_lock`` for webhook claims (see ``SQLWebhooks``)."""
        return {}

    def _queue_webhooks(self, conn: Any, applied: Sequence[Applied]) -> None:
        """Inside a write's transaction: queue its changes for the project's webhooks."""
        self.webhooks.enqueue(conn, applied)

    def _make_outbox(self, **dialect: Any) -> SQLOutbox:
        return SQLOutbox(self._t("outbox"), self._write, mark=self.mark, read=self._read, **dialect)

    def _check_vector(self, vector: np.ndarray | None) -> np.ndarray:
        if vector is None:
            raise StoreError("a memory cannot be stored without its vector")
        v = np.asarray(vector, dtype=np.float32).reshape(-1)
        if self._dims is not None and v.shape[0] != self._dims:
            raise StoreError(f"vector has {v.shape[0]} dims, the store holds {self._dims}")
        return v

    def _history(self, conn: Any, memory_id: str, event: str, old: str | None, new: str | None, actor_id: str | None, when: str,
                 reason: str | None = None) -> None:
        conn.execute(self._sql("INSERT INTO {t}history (id, memory_id, event, old_memory, new_memory, actor_id, created_at, reason)"
                               " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"), (str(uuid.uuid4()), memory_id, event, old, new, actor_id, when, reason))

    @staticmethod
    def _lifetime_after_update(change: Any, old: Any) -> tuple[str | None, str | None]:
        """``(expiration_date, expires_at)`` an UPDATE leaves: the record's when it sets the
        expiry (``Change.sets_expiry``), else the stored ones; the record is told what stays."""
        r = change.record
        if not change.sets_expiry:
            r.expiration_date = old["expiration_date"]
        r.immutable = bool(old["immutable"])
        return r.expiration_date, expiry_instant(r.expiration_date)

    # -- embedder binding ----------------------------------------------------------------------

    def bind_embedder(self, model_id: str, dims: int) -> None:
        declared = self.options.embedding_model_dims
        if declared and declared != dims:
            raise EmbedderMismatchError(f"vector_store.config.embedding_model_dims is {declared} but the embedder "
                                        f"{model_id} produces {dims} dimensions")
        with self._write("recording the embedding model") as conn:
            self._lock_bind(conn)
            rows = {r["key"]: r["value"] for r in conn.execute(self._sql("SELECT key, value FROM {t}store_info")).fetchall()}
            if "embedding_model" not in rows:
                conn.execute(self._sql("INSERT INTO {t}store_info VALUES ('embedding_model', ?), ('embedding_dims', ?)"), (model_id, str(dims)))
                self._first_bind(conn, dims)
            elif rows["embedding_model"] != model_id or int(rows["embedding_dims"]) != dims:
                raise EmbedderMismatchError(
                    f"the store {self.label} was built with the embedding model {rows['embedding_model']} "
                    f"({rows['embedding_dims']} dims), but the config asks for {model_id} ({dims} dims); vectors of two "
                    "models cannot be compared. Use the original embedder, or another store and re-import the memories "
                    "there (memlane memories export / import re-embeds them)")
        self._dims = dims

    def embedding_model(self) -> str | None:
        with self._read("reading the embedding model") as conn:
            row = conn.execute(self._sql("SELECT value FROM {t}store_info WHERE key = 'embedding_model'")).fetchone()
        return row["value"] if row else None

    # -- project settings (mem0's get_project / update_project) ---------------------------------

    def project_settings(self) -> dict[str, Any]:
        """The project's own settings (custom instructions and categories), kept beside its
        memories so every face of this store (server, CLI, embedded) reads the same."""
        with self._read("reading the project settings") as conn:
            row = conn.execute(self._sql("SELECT value FROM {t}store_info WHERE key = 'project_settings'")).fetchone()
        return dict(json.loads(row["value"])) if row else {}

    def set_project_settings(self, settings: dict[str, Any]) -> None:
        with self._write("saving the project settings") as conn:
            conn.execute(self._sql("INSERT INTO {t}store_info (key, value) VALUES ('project_settings', ?) "
                                   "ON CONFLICT (key) DO UPDATE SET value = excluded.value"), (json.dumps(settings),))

    # -- reads ---------------------------------------------------------------------------------

    def get(self, memory_id: str) -> MemoryRecord | None:
        with self._read("reading a memory") as conn:
            row = conn.execute(self._sql("SELECT * FROM {t}memories WHERE id = ?"), (memory_id,)).fetchone()
        return record_from_row(row) if row else None

    def list(self, scope: Scope, filters: Filter | None, limit: int | None, *, oldest_first: bool = False,
             offset: int = 0) -> list[MemoryRecord]:
        where, params = self._where(scope, filters)
        direction = "ASC" if oldest_first else "DESC"
        sql = (f"SELECT m.* FROM {self._t('memories')} m WHERE {where}"
               f" ORDER BY m.created_at{self.text_order} {direction}, m.{self.key} {direction}")
        if limit is not None:
            sql += f" LIMIT {self.mark}"
            params.append(int(limit))
        elif offset:
            sql += f" LIMIT {self.no_limit}"
        if offset:
            sql += f" OFFSET {self.mark}"
            params.append(int(offset))
        with self._read("listing memories") as conn:
            return [record_from_row(r) for r in conn.execute(sql, params).fetchall()]

    def count_where(self, scope: Scope, filters: Filter | None) -> int:
        where, params = self._where(scope, filters)
        with self._read("counting memories") as conn:
            return int(conn.execute(f"SELECT count(*) AS n FROM {self._t('memories')} m WHERE {where}", params).fetchone()["n"])

    def has_expired(self, scope: Scope, now: str) -> bool:
        where, params = self._where(scope, None)
        with self._read("looking for expired memories") as conn:
            row = conn.execute(f"SELECT 1 AS x FROM {self._t('memories')} m WHERE m.expires_at{self.text_order} <= {self.mark}"
                               f" AND {where} LIMIT 1", [now, *params]).fetchone()
        return row is not None

    def count(self) -> int:
        with self._read("counting memories") as conn:
            return int(conn.execute(self._sql("SELECT count(*) AS n FROM {t}memories")).fetchone()["n"])

    def entities(self) -> list[tuple[str, str, int]]:
        """``(type, id, memory count)`` for every user, agent and run that has memories."""
        with self._read("listing entities") as conn:
            rows = conn.execute(self._sql(
                "SELECT 'user' AS t, user_id AS name, count(*) AS n FROM {t}memories WHERE user_id IS NOT NULL GROUP BY user_id"
                " UNION ALL SELECT 'agent', agent_id, count(*) FROM {t}memories WHERE agent_id IS NOT NULL GROUP BY agent_id"
                " UNION ALL SELECT 'run', run_id, count(*) FROM {t}memories WHERE run_id IS NOT NULL GROUP BY run_id")).fetchall()
        return [(r["t"], r["name"], int(r["n"])) for r in rows]

    def changes_since(self, since: str) -> dict[str, int]:
        with self._read("counting changes") as conn:
            rows = conn.execute(self._sql("SELECT event, count(*) AS n FROM {t}history WHERE created_at >= ? GROUP BY event"),
                                (since,)).fetchall()
        return {r["event"]: int(r["n"]) for r in rows}

    def history(self, memory_id: str) -> list[HistoryEvent]:
        with self._read("reading history") as conn:
            rows = conn.execute(self._sql("SELECT id, memory_id, event, old_memory, new_memory, actor_id, created_at, reason"
                                          " FROM {t}history WHERE memory_id = ? ORDER BY seq"), (memory_id,)).fetchall()
        return [HistoryEvent(**{k: r[k] for k in ("id", "memory_id", "event", "old_memory", "new_memory", "actor_id", "created_at", "reason")})
                for r in rows]

    def fetch(self, keys: Sequence[Any]) -> dict[Any, MemoryRecord]:
        if not keys:
            return {}
        where, params = self._in(self.key, keys)
        with self._read("reading memories") as conn:
            rows = conn.execute(f"SELECT {self.key} AS memlane_key, {RECORD_COLUMNS} FROM {self._t('memories')} WHERE {where}", params).fetchall()
        return {row["memlane_key"]: record_from_row(row) for row in rows}

    # -- what a vector engine beside this store needs (see memlane.stores.base.RecordIndex) --------

    def ids_matching(self, scope: Scope, filters: Filter | None, *, exact_scope: bool = False,
                     among: Sequence[str] | None = None) -> list[str]:
        where, params = self._where(scope, filters, exact_scope=exact_scope)
        if among is not None:
            if not among:
                return []
            clause, values = self._in("m.id", among)
            where, params = f"{where} AND {clause}", params + values
        with self._read("filtering memories") as conn:
            return [r["id"] for r in conn.execute(f"SELECT m.id FROM {self._t('memories')} m WHERE {where}", params).fetchall()]

    def vectors_for(self, memory_ids: Sequence[str]) -> dict[str, tuple[MemoryRecord, np.ndarray]]:
        if not memory_ids:
            return {}
        where, params = self._in("m.id", memory_ids)
        with self._read("reading vectors") as conn:
            rows = conn.execute(f"SELECT m.*, v.embedding FROM {self._t('memories')} m JOIN {self._t('vectors')} v"
                                f" ON v.{self.key_in_vectors} = m.{self.key} WHERE {where}", params).fetchall()
        return {r["id"]: (record_from_row(r), self._vector_value(r["embedding"])) for r in rows}

    def ids_page(self, after: str | None, limit: int) -> list[tuple[str, str]]:
        with self._read("listing memories") as conn:
            rows = conn.execute(self._sql(f"SELECT id, updated_at FROM {{t}}memories WHERE id{self.text_order} > ?"
                                          f" ORDER BY id{self.text_order} LIMIT ?"), (after or "", limit)).fetchall()
        return [(r["id"], r["updated_at"]) for r in rows]

    def keys_for(self, memory_ids: Sequence[str]) -> dict[str, Any]:
        if not memory_ids:
            return {}
        where, params = self._in("id", memory_ids)
        with self._read("reading memories") as conn:
            rows = conn.execute(f"SELECT id, {self.key} AS memlane_key FROM {self._t('memories')} WHERE {where}", params).fetchall()
        return {r["id"]: r["memlane_key"] for r in rows}

    def unsynced_ids(self) -> list[str]:
        with self._read("reading the vector sync list") as conn:
            return [r["memory_id"] for r in conn.execute(self._sql("SELECT memory_id FROM {t}vector_sync")).fetchall()]

    def clear_unsynced(self, memory_ids: Sequence[str]) -> None:
        if memory_ids:
            where, params = self._in("memory_id", memory_ids)
            with self._write("updating the vector sync list") as conn:
                conn.execute(f"DELETE FROM {self._t('vector_sync')} WHERE {where}", params)
