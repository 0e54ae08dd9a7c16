"""Qdrant for vectors, a SQL store for everything else.

Vectors and their payload (``memory_id user_id agent_id run_id scope_key`` and the memory's
``metadata``; the scope fields indexed) live in a Qdrant collection. Records, the keyword
index, history and the outbox live in a SQL store beside it: SQLite by default, or
PostgreSQL (``records: {"provider": "postgres", "config": {"dsn": ...}}``), so exactly-once
learning, per-scope locks and several instances work as with those stores. Metadata filters
are compiled to Qdrant filters (``qdrant_filters.py``) so they apply inside Qdrant's search,
before its top-k cut; SQL re-checks the hits.

Accepts the seed's ``{"host": "localhost", "port": 6333}``, ``url`` (+ ``api_key``), ``path``
(local mode) and ``":memory:"``. An unreachable server is a clear error at start; later
failures surface as ``StoreError``, which the chat path turns into "no memories this time".
Local mode is one process per folder (a Qdrant limitation); engines in one process share it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from contextlib import nullcontext
from pathlib import Path
from typing import Any, ContextManager, Hashable, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from memlane.config import memlane_home, validate_section
from memlane.files import make_private, private_dir
from memlane.query.filters import Filter
from memlane.errors import ConfigError, EmbedderMismatchError, StoreError
from memlane.records import HistoryEvent, MemoryRecord, Scope
from memlane.stores.base import Applied, Candidates, Change, Progress, RecordIndex
from memlane.stores.outbox import OutboxDone
from memlane.stores.pgvector import PgVectorStore
from memlane.stores.qdrant_filters import compile_filter
from memlane.stores.sqlite import SQLiteStore

log = logging.getLogger("memlane.qdrant")
_POINTS = uuid.UUID("6f1c1c7e-8d8e-4a52-9f57-6d656d6c616e")  # namespace: memory id -> point id


class RecordsSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provider: Literal["sqlite", "postgres", "pgvector"] = "sqlite"
    config: dict[str, Any] = Field(default_factory=dict)


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str | None = None
    port: int | None = None
    url: str | None = None
    api_key: str | None = None
    path: str | None = None
    collection_name: str = "memlane"
    embedding_model_dims: int | None = None
    on_disk: bool = False
    timeout: float = 10.0
    #: metadata fields to index in Qdrant (server mode), so filters on them stay fast at scale:
    #: ``{"category": "keyword", "priority": "float"}``; dotted paths reach nested fields
    payload_indexes: dict[str, Literal["keyword", "integer", "float", "bool", "datetime", "uuid"]] = Field(default_factory=dict)
    #: where records, history and the outbox live: SQLite (default) or PostgreSQL
    records: RecordsSection | None = None
    #: shorthand for ``records: {"provider": "sqlite", "config": {"path": ...}}`` (default:
    #: MEMLANE_HOME/qdrant-<collection>.db, or inside ``path`` in local mode)
    records_path: str | None = None




class _QdrantFailed(StoreError):
    """Qdrant itself failed (not the SQL store beside it)."""


_clients: dict[str, tuple[Any, int, threading.RLock]] = {}
_clients_lock = threading.Lock()


def _point_id(memory_id: str) -> str:
    return str(uuid.uuid5(_POINTS, memory_id))


def _records_store(o: Options, default_path: str, context: dict[str, Any]) -> RecordIndex:
    where = "vector_store.config.records.config"
    if o.records is not None and o.records_path is not None:
        raise ConfigError("vector_store.config: give records or records_path, not both", param="vector_store.config.records")
    section = o.records or RecordsSection(config={"path": o.records_path or default_path})
    cfg = {"embedding_model_dims": o.embedding_model_dims, **section.config}
    if section.provider == "sqlite":
        cfg.setdefault("path", default_path)
        return SQLiteStore({**cfg, "vector_cache_mb": 0}, config_path=where, **context)
    cfg.setdefault("schema_name", "qdrant_" + re.sub(r"[^a-z0-9_]", "_", o.collection_name.lower())[:50])
    # Qdrant searches; PostgreSQL keeps the vectors to re-sync it from, with no index of its own
    return PgVectorStore(cfg, config_path=where, vector_index=False, **context)


class QdrantStore:
    def __init__(self, options: dict[str, Any] | None = None, **context: Any) -> None:
        self.qoptions = validate_section(Options, options or {}, "vector_store.config")
        o = self.qoptions
        if sum(x is not None for x in (o.url, o.path, o.host)) > 1:
            raise ConfigError("vector_store.config: give one of host/port, url or path", param="vector_store.config")
        try:
            from qdrant_client import QdrantClient, models
        except ImportError:
            raise ConfigError("the qdrant store needs qdrant-client: pip install qdrant-client", param="vector_store.provider") from None
        self._models = models
        #: local mode's folder: Qdrant writes its own files there, made owner-only (memlane.files)
        self._folder: Path | None = None
        self._opened_at = time.time() - 1  # ctime has whole-second resolution on some filesystems
        if o.path == ":memory:":
            self._client_key = f"memory:{uuid.uuid4().hex}"
            factory: Any = lambda: QdrantClient(location=":memory:")  # noqa: E731
            default_records = ":memory:"
        elif o.path:
            folder = self._folder = private_dir(Path(o.path).expanduser().resolve())
            self._client_key = f"path:{folder}"
            factory = lambda: QdrantClient(path=str(folder))  # noqa: E731
            default_records = str(folder / "records.db")
        else:
            target = o.url or f"http://{o.host or 'localhost'}:{o.port or 6333}"
            self._client_key = f"url:{target}"
            factory = lambda: QdrantClient(url=o.url, host=None if o.url else (o.host or "localhost"),  # noqa: E731
                                           port=None if o.url else (o.port or 6333), api_key=o.api_key, timeout=int(o.timeout),
                                           check_compatibility=False)
            default_records = str(memlane_home() / f"qdrant-{o.collection_name}.db")
        self.qdrant = self._acquire(factory)
        if self._folder is not None:
            make_private(self._folder, self._opened_at)
        self._where_label = self._client_key.split(":", 1)[1]
        try:
            self.qdrant.get_collections()
        except Exception as exc:  # noqa: BLE001 - connection refused, DNS, TLS, auth...
            self._release()
            raise StoreError(f"cannot reach Qdrant at {self._where_label}: {exc}") from exc
        try:
            self.records = _records_store(o, default_records, context)
        except BaseException:
            self._release()
            raise
        self.outbox = self.records.outbox  # same connection as the records: "applied and dequeued in one commit"
        #: memories SQL holds but Qdrant may not (a Qdrant write failed after the SQL commit)
        self._unsynced: set[str] = set()
        self._unsynced_lock = threading.Lock()
        #: SQL's vector_sync list may hold memories Qdrant lacks (set when a catch-up failed)
        self._behind = False
        self._fallback_logged_at = float("-inf")
        self._collection_ready = False
        if self._q("checking the collection", self.qdrant.collection_exists, o.collection_name):
            self._check_in_sync()

    # -- the shared client ----------------------------------------------------------------------

    def _acquire(self, factory: Any) -> Any:
        with _clients_lock:
            client, refs, lock = _clients.get(self._client_key, (None, 0, threading.RLock()))
            if client is None:
                try:
                    client = factory()
                except Exception as exc:  # noqa: BLE001
                    raise StoreError(f"cannot open Qdrant ({self._client_key}): {exc}") from exc
            _clients[self._client_key] = (client, refs + 1, lock)
            # local mode is not thread-safe (seen: concurrent upserts from two learners failing);
            # the server client is, and needs no lock
            self._local_lock = lock if not self._client_key.startswith("url:") else None
            return client

    def _release(self) -> None:
        with _clients_lock:
            client, refs, lock = _clients.get(self._client_key, (None, 0, None))
            if client is None:
                return
            if refs <= 1:
                del _clients[self._client_key]
                try:
                    client.close()
                except Exception:  # noqa: BLE001
                    pass
            else:
                _clients[self._client_key] = (client, refs - 1, lock)

    def close(self) -> None:
        self.records.close()
        self._release()

    def _q(self, action: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            if self._local_lock is None:
                return fn(*args, **kwargs)
            with self._local_lock:
                return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise _QdrantFailed(f"Qdrant at {self._where_label} failed while {action}: {exc}") from exc

    # -- collection ----------------------------------------------------------------------------

    def embedding_model(self) -> str | None:
        return self.records.embedding_model()

    def project_settings(self) -> dict[str, Any]:
        return self.records.project_settings()

    def set_project_settings(self, settings: dict[str, Any]) -> None:
        self.records.set_project_settings(settings)

    def bind_embedder(self, model_id: str, dims: int) -> None:
        self.records.bind_embedder(model_id, dims)
        m, name = self._models, self.qoptions.collection_name
        if self._q("checking the collection", self.qdrant.collection_exists, name):
            info = self._q("reading the collection", self.qdrant.get_collection, name)
            size = info.config.params.vectors.size
            if size != dims:
                raise EmbedderMismatchError(f"the Qdrant collection {name!r} holds {size}-dim vectors, the embedder {model_id} makes {dims}")
        else:
            self._q("creating the collection", self.qdrant.create_collection, name,
                    vectors_config=m.VectorParams(size=dims, distance=m.Distance.COSINE, on_disk=self.qoptions.on_disk))
            if self._folder is not None:
                make_private(self._folder, self._opened_at)
        if self._client_key.startswith("url:"):  # local mode has no payload indexes (it scans)
            self._ensure_payload_indexes()

    def _ensure_payload_indexes(self) -> None:
        """Scope fields and the configured metadata fields; creating an existing index is a no-op."""
        m, name = self._models, self.qoptions.collection_name
        wanted = {f: "keyword" for f in ("user_id", "agent_id", "run_id", "scope_key", "memory_id")}
        wanted.update({f"metadata.{path}": kind for path, kind in self.qoptions.payload_indexes.items()})
        for field, kind in wanted.items():
            try:
                self.qdrant.create_payload_index(name, field, field_schema=m.PayloadSchemaType(kind), wait=True)
            except Exception as exc:  # noqa: BLE001 - an index is an optimisation; searches work without
                log.warning("Qdrant payload index on %s not created: %s", field, exc)

    # -- writes: SQL first (records, vectors, history, outbox), then the points --------------------
    #
    # SQL is the source of truth. Each change lists its memory in ``vector_sync`` in its own
    # transaction; Qdrant's acknowledgement removes it. A Qdrant write that fails is therefore
    # not an error for the caller (the memory is stored and keyword-searchable): it is re-sent
    # from SQL at the next write or search, or at the next start if this process dies first.

    @staticmethod
    def _payload(record: MemoryRecord) -> dict[str, Any]:
        return {"memory_id": record.id, "user_id": record.user_id, "agent_id": record.agent_id, "run_id": record.run_id,
                "scope_key": record.scope.key, "updated_at": record.updated_at, "metadata": record.metadata}

    def _point(self, record: MemoryRecord, vector: np.ndarray) -> Any:
        return self._models.PointStruct(id=_point_id(record.id), vector=np.asarray(vector, dtype=np.float32).tolist(),
                                        payload=self._payload(record))

    def apply(self, changes: Sequence[Change], *, actor_id: str | None = None, outbox_done: OutboxDone | None = None) -> list[Applied]:
        self._catch_up()
        applied = self.records.apply(changes, actor_id=actor_id, outbox_done=outbox_done, track_sync=True)
        touched = sorted({a.record.id for a in applied if a.event != "NONE"})
        if not touched:
            return applied
        vectors = {c.record.id: c.vector for c in changes if c.vector is not None}
        m, name = self._models, self.qoptions.collection_name
        try:
            points = [self._point(a.record, vectors[a.record.id]) for a in applied if a.event in ("ADD", "UPDATE") and a.record.id in vectors]
            if points:
                self._q("writing vectors", self.qdrant.upsert, name, points=points, wait=True)
            for a in applied:  # same text, new metadata: the vector stays, the payload follows
                if a.event == "UPDATE" and a.record.id not in vectors:
                    self._q("writing a payload", self.qdrant.overwrite_payload, name, payload=self._payload(a.record),
                            points=[_point_id(a.record.id)], wait=True)
            gone = [_point_id(a.record.id) for a in applied if a.event == "DELETE"]
            if gone:
                self._q("deleting vectors", self.qdrant.delete, name, points_selector=m.PointIdsList(points=gone), wait=True)
        except StoreError as exc:
            with self._unsynced_lock:
                self._unsynced |= set(touched)
            log.warning("%d memories are stored but not yet in Qdrant; they are re-sent from SQL at the next write or search: %s",
                        len(touched), exc)
            return applied
        self.records.clear_unsynced(touched)
        return applied

    def _catch_up(self) -> None:
        if not self._unsynced and not self._behind:
            return
        listed = set(self.records.unsynced_ids())
        with self._unsynced_lock:
            pending = sorted(self._unsynced | listed)
        try:
            self._sync(pending)
        except StoreError as exc:
            log.debug("Qdrant still unavailable, %d memories wait: %s", len(pending), exc)
            return
        self.records.clear_unsynced(pending)
        with self._unsynced_lock:
            self._unsynced -= set(pending)
        self._behind = False

    def _sync(self, memory_ids: Sequence[str], chunk: int = 1_000) -> None:
        """Make Qdrant hold exactly what SQL holds for these memories (in bounded batches)."""
        for start in range(0, len(memory_ids), chunk):
            self._sync_batch(memory_ids[start:start + chunk])

    def _sync_batch(self, memory_ids: Sequence[str]) -> None:
        m, name = self._models, self.qoptions.collection_name
        held = self.records.vectors_for(memory_ids)
        if held:
            self._q("re-sending vectors", self.qdrant.upsert, name, wait=True, points=[self._point(r, v) for r, v in held.values()])
        gone = [_point_id(i) for i in memory_ids if i not in held]
        if gone:
            self._q("deleting vectors", self.qdrant.delete, name, points_selector=m.PointIdsList(points=gone), wait=True)

    def _check_in_sync(self) -> None:
        """At start: re-send what an earlier process changed in SQL but never got into Qdrant; a
        count that still differs (Qdrant lost data, or records were restored) means a full resync."""
        try:
            pending = self.records.unsynced_ids()
            if pending:
                log.warning("re-sending %d memories an earlier process did not get into Qdrant", len(pending))
                self._sync(pending)
                self.records.clear_unsynced(pending)
            points = self._q("counting points", self.qdrant.count, self.qoptions.collection_name, exact=True).count
            memories = self.records.count()
            if points != memories:
                log.warning("Qdrant holds %d points for %d memories; re-syncing from SQL", points, memories)
                self.resync()
        except StoreError as exc:
            log.warning("could not bring Qdrant in line with SQL at start (retried at the next write): %s", exc)
            self._behind = True

    def resync(self, page: int = 1_000) -> dict[str, int]:
        """Bring Qdrant in line with SQL: re-send memories it lacks or holds an older version of,
        delete points whose memory is gone. Returns how many of each."""
        name, sent, deleted = self.qoptions.collection_name, 0, 0
        after: str | None = None
        while batch := self.records.ids_page(after, page):
            after = batch[-1][0]
            points = self._q("reading points", self.qdrant.retrieve, name, ids=[_point_id(i) for i, _ in batch], with_payload=["memory_id", "updated_at"])
            seen = {p.payload["memory_id"]: p.payload.get("updated_at") for p in points}
            stale = [i for i, updated in batch if seen.get(i, "missing") != updated]
            self._sync(stale)
            sent += len(stale)
        offset: Any = None
        while True:
            points, offset = self._q("reading points", self.qdrant.scroll, name, limit=page, offset=offset, with_payload=["memory_id"])
            ids = [p.payload["memory_id"] for p in points]
            known = self.records.keys_for(ids)
            orphans = [i for i in ids if i not in known]
            if orphans:
                self._sync(orphans)
                deleted += len(orphans)
            if offset is None:
                break
        with self._unsynced_lock:
            self._unsynced.clear()
        return {"sent": sent, "deleted": deleted}

    def delete_where(self, scope: Scope, filters: Filter | None, *, actor_id: str | None = None,
                     progress: Progress | None = None) -> int:
        doomed = self.records.ids_matching(scope, filters)
        count = self.records.delete_where(scope, filters, actor_id=actor_id, progress=progress)
        if doomed:
            try:
                self._q("deleting vectors", self.qdrant.delete, self.qoptions.collection_name,
                        points_selector=self._models.PointIdsList(points=[_point_id(i) for i in doomed]), wait=True)
            except StoreError as exc:  # the memories are gone; their points go at the next catch-up
                with self._unsynced_lock:
                    self._unsynced |= set(doomed)
                log.warning("%d deleted memories are still in Qdrant; removed at the next write or search: %s", len(doomed), exc)
        return count

    def reset(self) -> None:
        self.records.reset()
        self._collection_ready = False
        if self._q("checking the collection", self.qdrant.collection_exists, self.qoptions.collection_name):
            self._q("dropping the collection", self.qdrant.delete_collection, self.qoptions.collection_name)

    # -- search ----------------------------------------------------------------------------------

    def search(self, scope: Scope, filters: Filter | None, query_vector: np.ndarray, query_text: str, candidates: int,
               *, exact_scope: bool = False) -> Candidates:
        """Through Qdrant; while Qdrant fails, exactly over the vectors SQL keeps (slower on big
        scopes, same results), so recall survives a Qdrant outage."""
        self._catch_up()
        try:
            return self._search_qdrant(scope, filters, query_vector, query_text, candidates, exact_scope=exact_scope)
        except _QdrantFailed as exc:
            now = time.monotonic()
            if now - self._fallback_logged_at > 60:
                self._fallback_logged_at = now
                log.warning("searching the vectors kept in SQL while Qdrant is unavailable: %s", exc)
            return self.records.search(scope, filters, query_vector, query_text, candidates, exact_scope=exact_scope)

    def _search_qdrant(self, scope: Scope, filters: Filter | None, query_vector: np.ndarray, query_text: str, candidates: int,
                       *, exact_scope: bool) -> Candidates:
        m, name = self._models, self.qoptions.collection_name
        out = Candidates()
        if not self._collection_ready:  # asked once; a collection dropped later fails the query instead
            self._collection_ready = self._q("checking the collection", self.qdrant.collection_exists, name)
            if not self._collection_ready:
                return out
        out.keyword = self.records.keyword_candidates(scope, filters, query_text, candidates, exact_scope=exact_scope)
        must: list[Any] = []
        if exact_scope:
            must.append(m.FieldCondition(key="scope_key", match=m.MatchValue(value=scope.key)))
        else:
            must += [m.FieldCondition(key=f, match=m.MatchValue(value=v)) for f, v in scope.as_dict().items()]
        if filters is not None:
            must.append(compile_filter(filters, m, lambda c: self.records.ids_matching(scope, c, exact_scope=exact_scope), _point_id))
        q = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        hits = self._q("searching vectors", self.qdrant.query_points, name, query=q.tolist(), query_filter=m.Filter(must=must),
                       limit=candidates, with_payload=["memory_id"]).points
        sims = {h.payload["memory_id"]: float(h.score) for h in hits}
        if filters is not None and sims:  # Qdrant narrowed; SQL has the last word on the filter's meaning
            sims = {i: sims[i] for i in self.records.ids_matching(scope, filters, exact_scope=exact_scope, among=list(sims))}
        keys = self.records.keys_for(list(sims))
        out.dense = {keys[i]: score for i, score in sims.items() if i in keys}
        missing = [k for k in out.keyword if k not in out.dense]
        if missing:  # keyword hits outside the dense top-k still get their cosine
            ids = {r.id: k for k, r in self.records.fetch(missing).items()}
            points = self._q("reading vectors", self.qdrant.retrieve, name, ids=[_point_id(i) for i in ids], with_vectors=True,
                             with_payload=["memory_id"])
            norm = float(np.linalg.norm(q)) or 1.0
            for point in points:
                v = np.asarray(point.vector, dtype=np.float32)
                out.dense[ids[point.payload["memory_id"]]] = float(v @ q / ((float(np.linalg.norm(v)) or 1.0) * norm))
        return out

    # -- everything else is the record store's --------------------------------------------------

    def scope_lock(self, scope: Scope) -> ContextManager[None]:
        return self.records.scope_lock(scope)

    def get(self, memory_id: str) -> MemoryRecord | None:
        return self.records.get(memory_id)

    def list(self, scope: Scope, filters: Filter | None, limit: int | None, *, oldest_first: bool = False,
             offset: int = 0) -> list[MemoryRecord]:
        return self.records.list(scope, filters, limit, oldest_first=oldest_first, offset=offset)

    def count_where(self, scope: Scope, filters: Filter | None) -> int:
        return self.records.count_where(scope, filters)

    def fetch(self, keys: Sequence[Hashable]) -> dict[Hashable, MemoryRecord]:
        return self.records.fetch(keys)

    def history(self, memory_id: str) -> list[HistoryEvent]:
        return self.records.history(memory_id)

    def changes_since(self, since: str) -> dict[str, int]:
        return self.records.changes_since(since)

    def bulk_load(self) -> ContextManager[None]:
        """Nothing to rebuild at the end of a large import here."""
        return nullcontext()

    def has_expired(self, scope: Scope, now: str) -> bool:
        return self.records.has_expired(scope, now)

    def count(self) -> int:
        return self.records.count()

    def entities(self) -> list[tuple[str, str, int]]:
        return self.records.entities()

    @property
    def feedback(self) -> Any:
        """Feedback on memories lives with the records (memlane.stores.feedback)."""
        return self.records.feedback  # type: ignore[attr-defined]

    @property
    def webhooks(self) -> Any:
        """The webhooks and their delivery queue live with the records, so a delivery is queued
        in the records' transaction (memlane.stores.webhooks)."""
        return self.records.webhooks  # type: ignore[attr-defined]
