"""Qdrant for vectors, the SQL store for everything else.

Vectors and their scope payload (``user_id agent_id run_id scope_key``, indexed) live in a
Qdrant collection; records, the keyword index, history and the outbox stay in the SQLite store
(this class extends it), so exactly-once learning and per-scope locks work as everywhere.
Metadata filters are evaluated by SQL with the same semantics as every backend and handed to
Qdrant as the set of ids the dense search may return, so they apply before its top-k cut.

Accepts the seed's ``{"host": "localhost", "port": 6333}``, ``url`` (+ ``api_key``), ``path``
(local mode) and ``":memory:"``. An unreachable server is a clear error at start; later
failures surface as ``StoreError``, which the chat path turns into "no memories this time".
Local mode is one process per folder (a Qdrant limitation); engines in one process share it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from memlane.config import memlane_home, validate_section
from memlane.engine.filters import Filter
from memlane.errors import ConfigError, EmbedderMismatchError, StoreError
from memlane.records import Scope
from memlane.stores.base import Applied, Candidates, Change
from memlane.stores.outbox import OutboxItem
from memlane.stores.sqlite import SQLiteStore

log = logging.getLogger("memlane.qdrant")
_POINTS = uuid.UUID("6f1c1c7e-8d8e-4a52-9f57-6d656d6c616e")  # namespace: memory id -> point id


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str | None = None
    port: int | None = None
    grpc_port: int | None = None
    url: str | None = None
    api_key: str | None = None
    path: str | None = None
    collection_name: str = "memlane"
    embedding_model_dims: int | None = None
    on_disk: bool = False
    timeout: float = 10.0
    #: the SQLite file for records, history and the outbox (default: MEMLANE_HOME/qdrant-<collection>.db,
    #: or inside ``path`` in local mode)
    records_path: str | None = None


_clients: dict[str, tuple[Any, int, threading.RLock]] = {}
_clients_lock = threading.Lock()


def _point_id(memory_id: str) -> str:
    return str(uuid.uuid5(_POINTS, memory_id))


class QdrantStore(SQLiteStore):
    exact_search = False

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
        if o.path == ":memory:":
            self._client_key = f"memory:{uuid.uuid4().hex}"
            factory: Any = lambda: QdrantClient(location=":memory:")  # noqa: E731
            records = o.records_path or ":memory:"
        elif o.path:
            folder = Path(o.path).expanduser().resolve()
            self._client_key = f"path:{folder}"
            factory = lambda: QdrantClient(path=str(folder))  # noqa: E731
            records = o.records_path or str(folder / "records.db")
        else:
            target = o.url or f"http://{o.host or 'localhost'}:{o.port or 6333}"
            self._client_key = f"url:{target}"
            factory = lambda: QdrantClient(url=o.url, host=None if o.url else (o.host or "localhost"),  # noqa: E731
                                           port=None if o.url else (o.port or 6333), api_key=o.api_key, timeout=int(o.timeout),
                                           check_compatibility=False)
            records = o.records_path or str(memlane_home() / f"qdrant-{o.collection_name}.db")
        self.qdrant = self._acquire(factory)
        self._where_label = self._client_key.split(":", 1)[1]
        try:
            self.qdrant.get_collections()
        except Exception as exc:  # noqa: BLE001 - connection refused, DNS, TLS, auth...
            self._release()
            raise StoreError(f"cannot reach Qdrant at {self._where_label}: {exc}") from exc
        super().__init__({"path": records, "embedding_model_dims": o.embedding_model_dims, "vector_cache_mb": 0}, **context)

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
        super().close()
        self._release()

    def _q(self, action: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            if self._local_lock is None:
                return fn(*args, **kwargs)
            with self._local_lock:
                return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise StoreError(f"Qdrant at {self._where_label} failed while {action}: {exc}") from exc

    # -- collection ----------------------------------------------------------------------------

    def bind_embedder(self, model_id: str, dims: int) -> None:
        super().bind_embedder(model_id, dims)
        m, name = self._models, self.qoptions.collection_name
        if self._q("checking the collection", self.qdrant.collection_exists, name):
            info = self._q("reading the collection", self.qdrant.get_collection, name)
            size = info.config.params.vectors.size
            if size != dims:
                raise EmbedderMismatchError(f"the Qdrant collection {name!r} holds {size}-dim vectors, the embedder {model_id} makes {dims}")
            return
        self._q("creating the collection", self.qdrant.create_collection, name,
                vectors_config=m.VectorParams(size=dims, distance=m.Distance.COSINE, on_disk=self.qoptions.on_disk))
        if not self._client_key.startswith("url:"):
            return  # local mode has no payload indexes
        for field in ("user_id", "agent_id", "run_id", "scope_key"):
            try:
                self.qdrant.create_payload_index(name, field, field_schema=m.PayloadSchemaType.KEYWORD)
            except Exception as exc:  # noqa: BLE001 - local mode has no payload indexes
                log.debug("payload index on %s not created: %s", field, exc)

    # -- writes: SQL first (records, history, outbox), then the vectors of what was applied ------

    def _vector_blob(self, vector: np.ndarray | None) -> bytes:
        if vector is None:
            raise StoreError("a memory cannot be stored without its vector")
        return b""  # vectors live in Qdrant

    def apply(self, changes: Sequence[Change], *, actor_id: str | None = None, outbox_done: OutboxItem | None = None) -> list[Applied]:
        vectors = {c.record.id: c.vector for c in changes if c.vector is not None}
        applied = super().apply(changes, actor_id=actor_id, outbox_done=outbox_done)
        m = self._models
        points = [
            m.PointStruct(id=_point_id(a.record.id), vector=np.asarray(vectors[a.record.id], dtype=np.float32).tolist(),
                          payload={"memory_id": a.record.id, "user_id": a.record.user_id, "agent_id": a.record.agent_id,
                                   "run_id": a.record.run_id, "scope_key": a.record.scope.key})
            for a in applied if a.event in ("ADD", "UPDATE") and a.record.id in vectors
        ]
        gone = [_point_id(a.record.id) for a in applied if a.event == "DELETE"]
        if points:
            self._q("writing vectors", self.qdrant.upsert, self.qoptions.collection_name, points=points, wait=True)
        if gone:
            self._q("deleting vectors", self.qdrant.delete, self.qoptions.collection_name, points_selector=m.PointIdsList(points=gone), wait=True)
        return applied

    def delete_where(self, scope: Scope, filters: Filter | None, *, actor_id: str | None = None) -> int:
        doomed = [r.id for r in self.list(scope, filters, None)]
        count = super().delete_where(scope, filters, actor_id=actor_id)
        if doomed:
            self._q("deleting vectors", self.qdrant.delete, self.qoptions.collection_name,
                    points_selector=self._models.PointIdsList(points=[_point_id(i) for i in doomed]), wait=True)
        return count

    def reset(self) -> None:
        super().reset()
        if self._q("checking the collection", self.qdrant.collection_exists, self.qoptions.collection_name):
            self._q("dropping the collection", self.qdrant.delete_collection, self.qoptions.collection_name)

    # -- search ----------------------------------------------------------------------------------

    def search(self, scope: Scope, filters: Filter | None, query_vector: np.ndarray, query_text: str, candidates: int,
               *, exact_scope: bool = False) -> Candidates:
        m, name = self._models, self.qoptions.collection_name
        where, params = self._where(scope, filters, exact_scope=exact_scope)
        out = Candidates()
        with self._snapshot("searching memories") as db:
            keyword = self._keyword(db, scope, where, params, query_text, candidates)
            allowed = None
            if filters is not None:
                allowed = [r[0] for r in db.execute(f"SELECT m.id FROM memories m WHERE {where}", params)]
        if not self._q("checking the collection", self.qdrant.collection_exists, name):
            return out
        must: list[Any] = []
        if exact_scope:
            must.append(m.FieldCondition(key="scope_key", match=m.MatchValue(value=scope.key)))
        else:
            must += [m.FieldCondition(key=f, match=m.MatchValue(value=v)) for f, v in scope.as_dict().items()]
        if allowed is not None:
            if not allowed:
                return out
            must.append(m.HasIdCondition(has_id=[_point_id(i) for i in allowed]))
        q = np.asarray(query_vector, dtype=np.float32).tolist()
        hits = self._q("searching vectors", self.qdrant.query_points, name, query=q, query_filter=m.Filter(must=must),
                       limit=candidates, with_payload=["memory_id"]).points
        sims = {h.payload["memory_id"]: float(h.score) for h in hits}
        with self._snapshot("searching memories") as db:
            rowid_of = dict(db.execute(f"SELECT id, rowid FROM memories WHERE rowid IN ({', '.join('?' for _ in keyword) or 'NULL'})"
                                       f" OR id IN ({', '.join('?' for _ in sims) or 'NULL'})", [*keyword, *sims]).fetchall())
        id_of = {rowid: memory_id for memory_id, rowid in rowid_of.items()}
        out.dense = {rowid_of[i]: s for i, s in sims.items() if i in rowid_of}
        out.keyword = keyword
        missing = [id_of[r] for r in keyword if r not in out.dense and r in id_of]
        if missing:  # keyword hits outside the dense top-k still get their cosine
            points = self._q("reading vectors", self.qdrant.retrieve, name, ids=[_point_id(i) for i in missing], with_vectors=True, with_payload=["memory_id"])
            qv = np.asarray(q, dtype=np.float32)
            for p in points:
                v = np.asarray(p.vector, dtype=np.float32)
                out.dense[rowid_of[p.payload["memory_id"]]] = float(v @ qv / ((np.linalg.norm(v) * np.linalg.norm(qv)) or 1.0))
        return out
