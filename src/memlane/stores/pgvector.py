"""PostgreSQL + pgvector: records, vectors, full-text index, history and the outbox in one
database, so any number of memlane instances can share it.

- Vectors: an HNSW index (cosine). When the scope and filter leave few rows, they are searched
  exactly (no recall loss under selective filters); otherwise through the index with
  pgvector's iterative scans. Each vector row carries its scope, so an unfiltered search never
  joins the records.
- Keywords: PostgreSQL full-text search (``english``), memory text weighted above the
  neighbouring-turn context. The engine fuses the two signals, as for every store.
- Per-scope serialisation: ``pg_advisory_lock`` on the exact scope, held on its own connection.
- Outbox: leased rows claimed with ``FOR UPDATE SKIP LOCKED``; an item is deleted in the same
  transaction that applies what was learnt from it (exactly once across instances).
Every statement is parameterised; identifiers (the schema) are validated and quoted.
"""

from __future__ import annotations

import hashlib
import json
import queue
import re
import threading
import uuid
from contextlib import contextmanager
from typing import Any, ContextManager, Iterator, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from memlane.config import validate_section
from memlane.errors import ConfigError, NotFoundError, StoreError, ValidationError
from memlane.query.filters import Filter
from memlane.query.keywords import query_terms
from memlane.records import MemoryRecord, Scope, expiry_instant, utc_now
from memlane.stores.base import Applied, Candidates, Change, Progress, tell_progress
from memlane.stores.outbox import OutboxDone
from memlane.stores.scope_locks import ScopeLocks
from memlane.stores.pg_filters import compile_filter
from memlane.stores.pg_migrations import migrate
from memlane.stores.keyword_index import KeywordIndexes
from memlane.stores.sql import SQLStore, mapped_errors, record_from_row, version_keys

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_VECTOR_SCOPE_COLUMNS = "user_id text, agent_id text, run_id text, scope_key text NOT NULL"
_SCOPE_INDEXES_SQL = ("CREATE INDEX IF NOT EXISTS vectors_user ON {s}.vectors (user_id); CREATE INDEX IF NOT EXISTS vectors_agent ON {s}.vectors (agent_id);"
                      " CREATE INDEX IF NOT EXISTS vectors_run ON {s}.vectors (run_id); CREATE INDEX IF NOT EXISTS vectors_scope ON {s}.vectors (scope_key);")


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dsn: str | None = None
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = None
    dbname: str | None = None
    schema_name: str = "memlane"
    #: mem0 names, accepted so mem0 configs work
    collection_name: str | None = None
    embedding_model_dims: int | None = None
    min_connections: int = 1
    max_connections: int = 10
    connect_timeout: float = 10.0
    #: scopes with at most this many memories are searched exactly, bigger ones through HNSW
    exact_search_max_rows: int = 20_000
    hnsw_m: int = 16
    hnsw_ef_construction: int = 64
    #: measured on 20k clustered vectors: 100 → recall@10 0.74 (5 ms), 200 → 0.88 (7 ms), 300 → 0.95 (9 ms), 400 → 1.0 (38 ms)
    hnsw_ef_search: int = 300
    #: ``maintenance_work_mem`` for building the HNSW index after a bulk load; a build whose graph
    #: outgrows it gets much slower (1M 384-dim vectors need about 2 GB)
    index_build_memory_mb: int = 1024
    #: Weight of neighbouring-turn context against the memory text in BM25, as the SQLite
    #: store's (the full-text fallback, ``keyword_index_mb: 0``, maps it to a tsvector label)
    context_weight: float = 1.0
    #: In-process keyword index per scope (BM25, as the SQLite store scores it;
    #: memlane.stores.keyword_index), LRU bounded in bytes; 0: PostgreSQL's ts_rank query
    keyword_index_mb: int = 128
    #: A scope's index is built inline, in the search that needs it, up to this many memories;
    #: a bigger scope's in the background (a 10k-memory real-text scope: ~0.6 s here), its
    #: searches using the full-text query until it is ready.
    keyword_index_inline_rows: int = 2000


def _lock_key(scope: Scope) -> int:
    return int.from_bytes(hashlib.sha1(("memlane:" + scope.key).encode()).digest()[:8], "big", signed=True)


class PgVectorStore(SQLStore):
    mark = "%s"
    key = "rid"
    key_in_vectors = "rid"
    text_order = ' COLLATE "C"'

    def __init__(self, options: dict[str, Any] | None = None, *, config_path: str = "vector_store.config",
                 vector_index: bool = True, **_: Any) -> None:
        """``vector_index=False`` when a vector engine beside this store (Qdrant) searches: the
        vectors are still kept here (the source Qdrant is re-synced from) but without an HNSW
        index to maintain."""
        self.vector_index = vector_index
        self.options = validate_section(Options, options or {}, config_path)
        o = self.options
        if not _SCHEMA.match(o.schema_name):
            raise ConfigError(f"{config_path}.schema_name {o.schema_name!r} must be a lower-case SQL identifier",
                              param=f"{config_path}.schema_name")
        try:
            import psycopg
            from psycopg.rows import dict_row
            from psycopg_pool import ConnectionPool
        except ImportError as exc:
            raise ConfigError(f"the pgvector store needs psycopg 3 and psycopg_pool: pip install 'psycopg[binary]' psycopg_pool pgvector ({exc.name} missing)",
                              param="vector_store.provider") from None
        self._psycopg = psycopg
        self.s = f'"{o.schema_name}"'
        self.prefix = self.s + "."
        self.label = f"(PostgreSQL schema {o.schema_name})"
        self._conninfo = o.dsn or psycopg.conninfo.make_conninfo(
            **{k: v for k, v in (("host", o.host), ("port", o.port), ("user", o.user), ("password", o.password), ("dbname", o.dbname)) if v is not None})
        self._dims: int | None = None
        #: the connection holding this thread's scope lock: the work done under the lock runs on
        #: it, so a thread never waits on the pool for a second connection while holding one
        self._held = threading.local()
        #: in-process locks per scope, dropped when unused (the advisory lock is the cross-process one)
        self._scope_locks = ScopeLocks(None)
        mb = o.keyword_index_mb
        self._keywords = KeywordIndexes(mb * 1024 * 1024, o.context_weight) if mb > 0 else None
        self._builds = queue.Queue()
        self._builder_lock = threading.Lock()
        self._bootstrap()
        self._pool = ConnectionPool(self._conninfo, min_size=o.min_connections, max_size=o.max_connections,
                                    kwargs={"row_factory": dict_row, "autocommit": False}, configure=self._configure,
                                    open=True, timeout=o.connect_timeout)
        self._migrate()
        claim_lock = f"SELECT pg_advisory_xact_lock({_lock_key(Scope(run_id='memlane-outbox-claim:' + o.schema_name))})"
        self.outbox = self._make_outbox(json_in="%s::jsonb", skip_locked=True, claim_lock=claim_lock)

    # -- connections -------------------------------------------------------------------------

    def _where_to(self) -> str:
        return re.sub(r"password=\S+", "password=***", self._conninfo) or "(libpq defaults)"

    def _mapped(self, action: str) -> ContextManager[None]:
        from psycopg_pool import PoolTimeout

        return mapped_errors(action, backend="PostgreSQL", where=self._where_to(),
                             unreachable=(self._psycopg.OperationalError, PoolTimeout), failed=(self._psycopg.Error,))

    def _bootstrap(self) -> None:
        """Check the server and the pgvector extension before building a pool around them."""
        with self._mapped("connecting"):
            with self._psycopg.connect(self._conninfo, autocommit=True, connect_timeout=int(self.options.connect_timeout)) as conn:
                installed = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
                available = installed or conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
                if available is None:
                    raise StoreError("the pgvector extension is not installed in this PostgreSQL server "
                                     "(https://github.com/pgvector/pgvector#installation); memlane needs it for vector search")
                # concurrent CREATE ... IF NOT EXISTS from instances starting together can still
                # collide in the catalog (seen: one of two `memlane serve` died at start): serialise
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(Scope(run_id="memlane-bootstrap")),))
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.s}")

    @staticmethod
    def _configure(conn: Any) -> None:
        from pgvector.psycopg import register_vector

        register_vector(conn)
        conn.commit()

    @contextmanager
    def _tx(self, action: str) -> Iterator[Any]:
        held = getattr(self._held, "conn", None)
        if held is not None:
            with self._mapped(action), held.transaction():
                yield held
            return
        with self._mapped(action), self._pool.connection() as conn:
            with conn.transaction():
                yield conn

    _write = _tx
    _read = _tx

    def close(self) -> None:
        self._pool.close()

    # -- schema ----------------------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._tx("migrating the schema") as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(Scope(run_id="memlane-migrations")),))
            migrate(self, conn)

    def _webhook_dialect(self) -> dict[str, Any]:
        """Webhook claims skip locked rows and take a transaction lock of their own (as the outbox's)."""
        key = _lock_key(Scope(run_id="memlane-webhook-claim:" + self.options.schema_name))
        return {"skip_locked": True, "claim_lock": f"SELECT pg_advisory_xact_lock({key})"}

    def _lock_bind(self, conn: Any) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(Scope(run_id="memlane-bind")),))

    def _first_bind(self, conn: Any, dims: int) -> None:
        # after a reset the (empty) vectors table may have another model's width: rebuild it
        conn.execute(f"DROP TABLE IF EXISTS {self.s}.vectors")
        conn.execute(f"CREATE TABLE {self.s}.vectors (rid bigint PRIMARY KEY REFERENCES {self.s}.memories (rid) ON DELETE CASCADE,"
                     f" embedding vector({int(dims)}) NOT NULL, {_VECTOR_SCOPE_COLUMNS})")
        self.create_vector_indexes(conn)

    def _compile(self, filters: Filter) -> tuple[str, list[Any]]:
        return compile_filter(filters)

    def _vector_value(self, stored: Any) -> np.ndarray:
        return np.asarray(stored.to_numpy(), dtype=np.float32)

    def _in(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(%s)", [list(values)]

    def has_vectors_table(self, conn: Any) -> bool:
        """The vectors table appears at the first bind (its width is the embedder's)."""
        return bool(conn.execute(f"SELECT to_regclass('{self.options.schema_name}.vectors') AS t").fetchone()["t"])

    def create_vector_indexes(self, conn: Any) -> None:
        """The vectors table's scope indexes and (unless Qdrant searches) its HNSW index."""
        conn.execute(_SCOPE_INDEXES_SQL.format(s=self.s))
        self._create_vector_index(conn)

    def _create_vector_index(self, conn: Any) -> None:
        o = self.options
        if not self.vector_index:
            return
        conn.execute(f"SET LOCAL maintenance_work_mem = '{int(o.index_build_memory_mb)}MB'")
        conn.execute(f"CREATE INDEX IF NOT EXISTS vectors_hnsw ON {self.s}.vectors USING hnsw (embedding vector_cosine_ops)"
                     f" WITH (m = {int(o.hnsw_m)}, ef_construction = {int(o.hnsw_ef_construction)})")

    @contextmanager
    def bulk_load(self, *, build_index: bool = True) -> Iterator[None]:
        """For big imports: drop the HNSW index, load, build it once at the end (incremental HNSW
        inserts are the slow part of a load). Searches meanwhile are exact, so still correct."""
        with self._tx("dropping the vector index") as conn:
            conn.execute(f"DROP INDEX IF EXISTS {self.s}.vectors_hnsw")
        try:
            yield
        finally:
            if build_index:
                with self._tx("building the vector index") as conn:
                    self._create_vector_index(conn)
            # fresh statistics: without them the planner took a 100k scope's HNSW query for a
            # sequential scan and sort (measured: 291 ms instead of 8 ms)
            with self._mapped("analysing the tables"), self._pool.connection() as conn:
                conn.autocommit = True
                try:
                    conn.execute(f"ANALYZE {self.s}.memories")
                    conn.execute(f"ANALYZE {self.s}.vectors")
                finally:
                    conn.autocommit = False

    # -- locking -------------------------------------------------------------------------------

    @contextmanager
    def scope_lock(self, scope: Scope) -> Iterator[None]:
        """A session advisory lock across processes, behind a per-scope thread lock within this
        one: threads queued on one scope hold no pool connection while they wait, and the holder
        does its work on the connection that holds the lock (see ``_tx``)."""
        key = _lock_key(scope)
        with self._scope_locks.hold(scope.key), self._mapped("locking a scope"), self._pool.connection() as conn:
            conn.autocommit = True
            conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            self._held.conn = conn
            try:
                yield
            finally:
                self._held.conn = None
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
                conn.autocommit = False

    # -- writes ----------------------------------------------------------------------------------

    def _tsv_sql(self) -> str:
        w = float(self.options.context_weight)
        label = "B" if w >= 0.4 else ("C" if w >= 0.2 else "D")
        return f"setweight(to_tsvector('english', %s), 'A') || setweight(to_tsvector('english', %s), '{label}')"

    def _set_context(self, conn: Any, key: Any, memory: str, context: str | None) -> None:
        conn.execute(f"UPDATE {self.s}.memories SET context = %s, tsv = {self._tsv_sql()} WHERE rid = %s", (context, memory, context or "", key))

    def apply(self, changes: Sequence[Change], *, actor_id: str | None = None, outbox_done: OutboxDone | None = None,
              track_sync: bool = False) -> list[Applied]:
        """``track_sync``: also list the changed memories in ``vector_sync`` (see ``unsynced_ids``)."""
        results: list[Applied] = []
        with self._tx("applying memory changes") as conn:
            if outbox_done is not None:
                self.outbox.finish(conn, outbox_done)
            adds: list[Change] = []
            touched: set[tuple[str, Any]] = set()
            for change in changes:  # runs of ADDs go in batches; order with UPDATE/DELETE is kept
                if change.event == "ADD":
                    adds.append(change)
                    continue
                results.extend(self._add_many(conn, adds, actor_id))
                adds = []
                handler = self._update if change.event == "UPDATE" else self._delete
                before = self._positions(conn, [change.record.id])
                results.append(handler(conn, change, actor_id))
                touched |= self._touched_by(conn, results[-1], before)
            results.extend(self._add_many(conn, adds, actor_id))
            touched |= self._positions(conn, [a.record.id for a in results if a.event == "ADD"])
            touched |= self._refresh_contexts(conn, touched)
            changed = [a for a in results if a.event != "NONE"]
            self._queue_webhooks(conn, changed)
            ids_of = {a.record.scope.key: version_keys(a.record.user_id, a.record.agent_id, a.record.run_id) for a in changed}
            keys = {k for ks in ids_of.values() for k in ks}
            self._bump(conn, keys, set())
            self._journal(conn, keys, touched, ids_of)
            if track_sync:
                touched = sorted({a.record.id for a in results if a.event != "NONE"})
                conn.cursor().executemany(f"INSERT INTO {self.s}.vector_sync (memory_id) VALUES (%s) ON CONFLICT DO NOTHING",
                                          [(i,) for i in touched])
        return results

    def _add_many(self, conn: Any, changes: list[Change], actor_id: str | None) -> list[Applied]:
        """Insert many memories with a handful of round trips (executemany runs them pipelined)."""
        if not changes:
            return []
        s = self.s
        known = {r["id"] for r in conn.execute(f"SELECT id FROM {s}.memories WHERE id = ANY(%s)", ([c.record.id for c in changes],))}
        fresh = [c for c in changes if c.record.id not in known]
        rids: dict[str, int] = {}
        if fresh:
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {s}.memories (id, memory, hash, scope_key, user_id, agent_id, run_id, metadata, created_at, updated_at,"
                    f" expiration_date, expires_at, immutable, tsv)"
                    f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, {self._tsv_sql()})"
                    " ON CONFLICT (scope_key, hash) DO NOTHING RETURNING rid, id",
                    [(c.record.id, c.record.memory, c.record.hash, c.record.scope.key, c.record.user_id, c.record.agent_id, c.record.run_id,
                      json.dumps(c.record.metadata, ensure_ascii=False), c.record.created_at, c.record.updated_at,
                      c.record.expiration_date, expiry_instant(c.record.expiration_date), c.record.immutable,
                      c.record.memory, "") for c in fresh],
                    returning=True,
                )
                while True:
                    row = cur.fetchone()
                    if row is not None:
                        rids[row["id"]] = row["rid"]
                    if not cur.nextset():
                        break
            inserted = [c for c in fresh if c.record.id in rids]
            vectors = [(rids[c.record.id], self._check_vector(c.vector), c.record.user_id, c.record.agent_id, c.record.run_id, c.record.scope.key)
                       for c in inserted]
            conn.cursor().executemany(f"INSERT INTO {s}.vectors (rid, embedding, user_id, agent_id, run_id, scope_key)"
                                      " VALUES (%s, %s, %s, %s, %s, %s)", vectors)
            history = []
            for c in inserted:
                r = c.record
                if c.history is None:
                    history.append((str(uuid.uuid4()), r.id, "ADD", None, r.memory, actor_id, r.created_at, c.reason))
                else:
                    history.extend((e.id, r.id, e.event, e.old_memory, e.new_memory, e.actor_id, e.created_at, e.reason) for e in c.history)
            conn.cursor().executemany(f"INSERT INTO {s}.history (id, memory_id, event, old_memory, new_memory, actor_id, created_at, reason)"
                                      " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING", history)
        out = []
        for c in changes:
            if c.record.id in rids:
                out.append(Applied("ADD", c.record))
            elif c.record.id in known:
                out.append(Applied("NONE", c.record))
            else:  # the same text is already in this scope
                existing = conn.execute(f"SELECT * FROM {s}.memories WHERE scope_key = %s AND hash = %s", (c.record.scope.key, c.record.hash)).fetchone()
                out.append(Applied("NONE", record_from_row(existing) if existing else c.record))
        return out

    def _update(self, conn: Any, change: Change, actor_id: str | None) -> Applied:
        r, s = change.record, self.s
        old = conn.execute(f"SELECT * FROM {s}.memories WHERE id = %s FOR UPDATE", (r.id,)).fetchone()
        if old is None:
            raise NotFoundError(f"memory {r.id!r} not found", param="memory_id")
        clash = conn.execute(f"SELECT 1 FROM {s}.memories WHERE scope_key = %s AND hash = %s AND id <> %s",
                             (old["scope_key"], r.hash, r.id)).fetchone()
        if clash is not None:
            if change.strict:
                raise ValidationError(f"memory {r.id!r}: its scope already holds another memory with the text {r.memory!r}",
                                      param="memories", code="duplicate_text")
            return Applied("NONE", record_from_row(old))
        conn.execute(f"UPDATE {s}.memories SET memory = %s, hash = %s, metadata = %s::jsonb, updated_at = %s, expiration_date = %s,"
                     f" expires_at = %s, tsv = {self._tsv_sql()} WHERE rid = %s",
                     (r.memory, r.hash, json.dumps(r.metadata, ensure_ascii=False), r.updated_at, *self._lifetime_after_update(change, old),
                      r.memory, old["context"] or "", old["rid"]))
        if r.memory != old["memory"]:
            conn.execute(f"UPDATE {s}.vectors SET embedding = %s WHERE rid = %s", (self._check_vector(change.vector), old["rid"]))
        self._history(conn, r.id, "UPDATE", old["memory"], r.memory, actor_id, r.updated_at, change.reason)
        r.created_at = old["created_at"]
        return Applied("UPDATE", r, previous_memory=old["memory"])

    def _delete(self, conn: Any, change: Change, actor_id: str | None) -> Applied:
        s = self.s
        old = conn.execute(f"DELETE FROM {s}.memories WHERE id = %s RETURNING *", (change.record.id,)).fetchone()
        if old is None:
            raise NotFoundError(f"memory {change.record.id!r} not found", param="memory_id")
        self._history(conn, old["id"], "DELETE", old["memory"], None, actor_id, utc_now())
        return Applied("DELETE", record_from_row(old), previous_memory=old["memory"])

    def delete_where(self, scope: Scope, filters: Filter | None, *, actor_id: str | None = None,
                     progress: Progress | None = None) -> int:
        where, params = self._where(scope, filters)
        with self._tx("deleting memories") as conn:
            ids = [r["id"] for r in conn.execute(f"SELECT m.id FROM {self.s}.memories m WHERE {where}", params)]
            positions = self._positions(conn, ids)
            ids_of: dict[str, list[str]] = {}
            deleted: list[Applied] = []
            for done, memory_id in enumerate(ids, 1):
                gone = self._delete(conn, Change("DELETE", MemoryRecord(id=memory_id, memory="", hash="")), actor_id)
                ids_of[gone.record.scope.key] = version_keys(gone.record.user_id, gone.record.agent_id, gone.record.run_id)
                deleted.append(gone)
                tell_progress(progress, done, len(ids))
            self._queue_webhooks(conn, deleted)
            refreshed = self._refresh_contexts(conn, positions)
            keys = {k for ks in ids_of.values() for k in ks}
            self._bump(conn, keys, keys)
            self._journal(conn, keys, positions | refreshed, ids_of)
        return len(ids)

    def reset(self) -> None:
        s = self.s
        with self._tx("resetting the store") as conn:
            # the vectors table stays (other instances may be searching it); it is emptied with its
            # memories and rebuilt at the next bind, possibly for another model
            conn.execute(f"TRUNCATE {s}.memories, {s}.history, {s}.outbox, {s}.store_info, {s}.vector_sync, {s}.outbox_learnt,"
                         f" {s}.scope_changes CASCADE")
            conn.execute(f"DELETE FROM {s}.feedback")  # about memories that are gone (webhooks and their queue stay)
            # versions only ever grow, so no in-process index from before the reset matches again
            conn.execute(f"UPDATE {s}.scope_versions SET version = version + 1, rewrites = rewrites + 1")
        if self._keywords is not None:
            self._keywords.clear()
        self._dims = None

    # -- reads ---------------------------------------------------------------------------------------

    # -- what a vector engine beside this store needs (see memlane.stores.base.RecordIndex) --------

    def keyword_candidates(self, scope: Scope, filters: Filter | None, query_text: str, candidates: int,
                           *, exact_scope: bool = False) -> dict[Any, float]:
        where, params = self._where(scope, filters, exact_scope=exact_scope)
        with self._tx("searching memories") as conn:
            found = self._indexed_keywords(conn, scope, filters, query_text, candidates, exact_scope=exact_scope)
            return found if found is not None else self._keyword(conn, where, params, query_text, candidates)

    def _keyword(self, conn: Any, where: str, params: list[Any], query_text: str, candidates: int) -> dict[Any, float]:
        terms = query_terms(query_text)
        if not terms:
            return {}
        rows = conn.execute(
            f"SELECT m.rid, ts_rank(m.tsv, query) AS score FROM {self.s}.memories m, to_tsquery('english', %s) query"
            f" WHERE m.tsv @@ query AND {where} ORDER BY score DESC LIMIT %s", [" | ".join(terms), *params, candidates]).fetchall()
        return {r["rid"]: float(r["score"]) for r in rows}

    def search(self, scope: Scope, filters: Filter | None, query_vector: np.ndarray, query_text: str, candidates: int,
               *, exact_scope: bool = False) -> Candidates:
        where, params = self._where(scope, filters, exact_scope=exact_scope)
        s, out = self.s, Candidates()
        q = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        with self._tx("searching memories") as conn:
            if self._dims is None and not self.has_vectors_table(conn):
                return out
            # counted with the filter: a selective filter in a big scope leaves few rows, which an
            # exact scan finds all of, where the index could run out of tuples before the top-k
            size = conn.execute(f"SELECT count(*) AS n FROM (SELECT 1 FROM {s}.memories m WHERE {where}"
                                f" LIMIT {int(self.options.exact_search_max_rows) + 1}) x", params).fetchone()["n"]
            # without a metadata filter the scope columns beside each vector suffice: no join
            if filters is None:
                source, vec = f"{s}.vectors m", "m.embedding"
            else:
                source, vec = f"{s}.vectors v JOIN {s}.memories m ON m.rid = v.rid", "v.embedding"
            if size <= self.options.exact_search_max_rows:
                order = f"({vec} <=> %s) + 0"  # an expression: the planner cannot use the index, the scan is exact
            else:
                order = f"{vec} <=> %s"
                conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                conn.execute(f"SET LOCAL hnsw.ef_search = {max(int(self.options.hnsw_ef_search), candidates)}")
            rows = conn.execute(f"SELECT m.rid, 1 - ({vec} <=> %s) AS sim FROM {source} WHERE {where} ORDER BY {order} LIMIT %s",
                                [q, *params, q, candidates]).fetchall()
            out.dense = {r["rid"]: float(r["sim"]) for r in rows}
            found = self._indexed_keywords(conn, scope, filters, query_text, candidates, exact_scope=exact_scope)
            out.keyword = found if found is not None else self._keyword(conn, where, params, query_text, candidates)
            if out.keyword:
                missing = [rid for rid in out.keyword if rid not in out.dense]
                if missing:  # keyword hits outside the dense top-k still get their cosine
                    for r in conn.execute(f"SELECT rid, 1 - (embedding <=> %s) AS sim FROM {s}.vectors WHERE rid = ANY(%s)", (q, missing)):
                        out.dense[r["rid"]] = float(r["sim"])
        return out
