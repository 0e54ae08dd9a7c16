"""``Memory``: the engine every face (client, server, CLI) drives.

It owns scope rules, input validation and the inference pipeline; the store owns persistence,
the embedder vectors, the LLM the two JSON stages. See product.md section 2 for the contract.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import functools
import hashlib
import logging
import threading
import time
import uuid
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterable, Iterator, Mapping, Sequence

import numpy as np

from memlane import registry
from memlane.config import MemlaneConfig, ProviderSection, load_config
from memlane.embedders.base import Embedder
from memlane.embedders.batching import QueryBatcher
from memlane.engine import inference, prompts
from memlane.engine.foreground import Foreground
from memlane.engine.messages import normalize_messages, transcript
from memlane.engine.alignment import alignment, shipped_word_vectors
from memlane.engine.validation import (check_encodable, check_limit, check_max_limit, check_metadata, check_scope_id, check_text,
                                       check_timestamp, resolve_limit, resolve_scope)
from memlane.engine.ranking import boosted, fuse, may_name_someone
from memlane.errors import NotFoundError, ScopeError, ValidationError
from memlane.llms.base import LLM
from memlane.query.filters import SCOPE_FIELDS, Filter
from memlane.query.when import parse_time, period_in
from memlane.records import HistoryEvent, MemoryRecord, Scope, SearchHit, utc_now
from memlane.stores.base import Applied, Change, MemoryStore
from memlane.stores.outbox import ExchangeState, OutboxBounds, OutboxItem

log = logging.getLogger("memlane.memory")

#: How many existing memories each new fact brings to the reconcile stage.
SIMILAR_PER_FACT = 5
MAX_EXISTING_SHOWN = 40
DEFAULT_LIST_LIMIT = 100
#: How the bundled MiniLM is recorded in a store (``SentenceTransformerEmbedder.model_id``).
MINILM_MODEL_ID = "sentence_transformers/all-MiniLM-L6-v2"
#: Imports at least this big go through the store's bulk load.
BULK_LOAD_ROWS = 5_000


def content_hash(text: str) -> str:
    """Exact-duplicate identity: same text modulo surrounding whitespace and case."""
    return hashlib.md5(" ".join(text.split()).lower().encode()).hexdigest()


@dataclass(frozen=True)
class SearchRequest:
    """One search, as ``Memory.search`` takes it (``search_hits`` takes it whole)."""

    query: str
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    filters: Mapping[str, Any] | None = None
    limit: int | None = None
    top_k: int | None = None
    threshold: float | None = None


def default_embedder(recorded: str | None) -> ProviderSection:
    """The embedder when the config names none: a store built with the bundled MiniLM keeps it
    (its vectors are in MiniLM's space; mixing spaces would make search meaningless), anything
    else gets the static default. ``memlane memories export``/``import`` moves a store over."""
    if recorded == MINILM_MODEL_ID:
        log.info("this store was built with all-MiniLM-L6-v2, so it keeps using it (the default for new stores is "
                 "the static model; export and import the memories into a new store to move over)")
        return ProviderSection(provider="sentence_transformers")
    return ProviderSection(provider="model2vec")


class Memory:
    """Long-term memory over one store, one embedder and one LLM.

    ``Memory()`` uses the embedded default (SQLite file under ``MEMLANE_HOME``, MiniLM).
    """

    def __init__(self, config: MemlaneConfig | Mapping[str, Any] | str | None = None) -> None:
        self.config = load_config(config)
        cfg = self.config
        context = {"fallback_base_url": cfg.upstream.base_url, "fallback_api_key": cfg.upstream.api_key}
        self.store: MemoryStore = registry.get_factory("vector_store", cfg.vector_store.provider)(
            cfg.vector_store.config, **context
        )
        #: the embedder section in use: the config's, or the default chosen for this store
        self.embedder_section = cfg.embedder or default_embedder(self.store.embedding_model())
        self.embedder: Embedder = registry.get_factory("embedder", self.embedder_section.provider)(
            self.embedder_section.config, **context)
        self.llm: LLM = registry.get_factory("llm", cfg.llm.provider)(cfg.llm.config, **context)
        self._bound = False
        self._bind_lock = threading.Lock()
        self._queries = QueryBatcher(self._embed)
        #: recalls in flight; background learning waits for them (see memlane.engine.foreground)
        self.foreground = Foreground()
        self._latest: dict[str, tuple[float, _dt.datetime | None]] = {}  # scope key -> (read at, latest memory's time)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Memory:
        return cls(config)

    # -- embedding ---------------------------------------------------------------------------

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.embedder.embed(list(texts))
        if not self._bound and len(vectors):
            with self._bind_lock:
                if not self._bound:
                    self.store.bind_embedder(self.embedder.model_id, int(vectors.shape[1]))
                    self._bound = True
        return vectors

    def warm_up(self) -> None:
        """Load the embedding model now (seconds for a local model) rather than on the first
        request; a failure here is logged, not raised: recall degrades, chat goes on."""
        try:
            self._embed(["warm up"])
        except Exception as exc:  # noqa: BLE001
            log.warning("embedder warm-up failed; recall will retry on each call: %s", exc)

    # -- add -----------------------------------------------------------------------------------

    def add(
        self,
        messages: Any,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        filters: Mapping[str, Any] | None = None,
        infer: bool = True,
        prompt: str | None = None,
        llm_model: str | None = None,
        timestamp: int | float | str | _dt.datetime | None = None,
    ) -> dict[str, Any]:
        """Remember what ``messages`` say; returns ``{"results": [{"id","memory","event",...}]}``.

        ``timestamp``: when the conversation happened (Unix seconds as mem0's Platform takes
        it, ISO 8601 or a datetime; default now). New memories carry it as ``created_at``, the
        keyword context links only turns close in time, and fact extraction resolves relative
        dates ("yesterday") against it. ``llm_model`` overrides the memory LLM's model for this
        call (the proxy passes the chat's own model when the config names none).
        """
        scope, _ = resolve_scope(user_id, agent_id, run_id, filters, required="add")
        meta = self._checked_metadata(metadata)
        when = check_timestamp(timestamp)
        turns = self._checked_turns(messages, stored=not infer)
        actor = next((m.get("name") for m in turns if m["role"] == "user" and m.get("name")), None)
        if infer:
            applied = self._add_inferred(turns, scope, meta, prompt, actor, llm_model, when=when)
        else:
            applied = self._add_verbatim(turns, scope, meta, actor, when=when)
        return {"results": [self._applied_dict(a) for a in applied if a.event != "NONE"]}

    def _checked_metadata(self, metadata: Any) -> dict[str, Any]:
        return check_metadata(metadata, self.config.server.max_metadata_bytes)

    def _checked_turns(self, messages: Any, *, stored: bool) -> list[dict[str, Any]]:
        """An add's turns, checked the same whichever way they came in. ``stored`` (infer=False):
        each turn becomes a memory, so each is held to ``server.max_memory_chars``. Otherwise
        the turns are read by fact extraction, which reads at most ``inference.max_input_chars x
        max_chunks``: more is refused here, not cut silently (a chat's exchange, which must
        not fail, is cut instead, and the cut is logged)."""
        turns = normalize_messages(messages)
        check_encodable(turns, "messages")
        if stored:
            for index, turn in enumerate(turns):
                if turn["role"] != "system":
                    check_text(turn["content"], f"messages[{index}].content", self.config.server.max_memory_chars)
        else:
            capacity = self.config.inference.max_input_chars * self.config.inference.max_chunks
            total = sum(len(t["content"]) for t in turns if t["role"] != "system")
            if total > capacity:
                raise ValidationError(f"messages hold {total} characters; fact extraction reads at most {capacity} per add "
                                      "(inference.max_input_chars x inference.max_chunks): add the conversation in parts",
                                      param="messages", code="text_too_long")
        return turns

    @staticmethod
    def _applied_dict(a: Applied) -> dict[str, Any]:
        out: dict[str, Any] = {"id": a.record.id, "memory": a.record.memory, "event": a.event}
        if a.event in ("UPDATE", "DELETE"):
            out["previous_memory"] = a.previous_memory
        return out

    def _new_record(self, text: str, scope: Scope, meta: dict[str, Any], now: str) -> MemoryRecord:
        return MemoryRecord(
            id=str(uuid.uuid4()), memory=text, hash=content_hash(text), metadata=dict(meta),
            user_id=scope.user_id, agent_id=scope.agent_id, run_id=scope.run_id, created_at=now, updated_at=now,
        )

    def _add_verbatim(self, turns: list[dict[str, Any]], scope: Scope, meta: dict[str, Any], actor: str | None,
                      *, when: str | None = None) -> list[Applied]:
        kept = [m for m in turns if m["role"] != "system" and m["content"].strip()]
        if not kept:
            return []
        texts = [m["content"] for m in kept]
        # Neighbouring turns reach the keyword index through the store, from the scope's
        # conversation order (memlane.stores.conversation), however the turns are batched.
        vectors = self._embed(texts)
        now = when or utc_now()
        changes = []
        for message, text, vector in zip(kept, texts, vectors):
            # who said it (the message's name, as mem0 records it): recall favours a speaker the query names
            speaker = {"actor_id": message["name"]} if isinstance(message.get("name"), str) and message["name"].strip() else {}
            record_meta = {"role": message["role"], **speaker, **meta, **message.get("metadata", {})}
            changes.append(Change("ADD", self._new_record(text, scope, record_meta, now), vector))
        with self.store.scope_lock(scope):
            return self.store.apply(changes, actor_id=actor)

    def learn(self, item: OutboxItem) -> list[Applied]:
        """Learn from one outbox exchange; the item leaves the outbox in the commit that applies
        what was learnt (or on its own when there was nothing to learn), never before."""
        payload = item.payload
        scope = Scope(**payload["scope"])
        model = None if self.config.llm.config.get("model") else payload.get("model")
        return self._add_inferred(
            normalize_messages(payload["messages"]), scope, payload.get("metadata") or {}, None, None, model, outbox=item,
            when=payload.get("timestamp"),
        )

    def _add_inferred(
        self, turns: list[dict[str, Any]], scope: Scope, meta: dict[str, Any], prompt: str | None,
        actor: str | None, llm_model: str | None, *, outbox: OutboxItem | None = None, when: str | None = None,
    ) -> list[Applied]:
        def nothing_learnt() -> list[Applied]:
            if outbox is not None:
                self.store.outbox.done(outbox)
            return []

        conversation = transcript(turns)
        if not conversation.strip():
            return nothing_learnt()
        extraction_prompt = prompt or self.config.custom_fact_extraction_prompt or prompts.FACT_EXTRACTION_PROMPT.format(
            today=(when or utc_now())[:10]  # the conversation's own date: relative dates resolve against it
        )
        # Extraction reads only the new turns, so it runs outside the scope lock.
        limits = self.config.inference
        pieces, dropped = inference.chunk_conversation(conversation, limits.max_input_chars, limits.max_chunks)
        if dropped:
            log.warning("exchange of %d characters: the oldest %d were left out of fact extraction (inference.max_input_chars"
                        " x inference.max_chunks = %d)", len(conversation), dropped, limits.max_input_chars * limits.max_chunks)
        facts = list(dict.fromkeys(
            fact for piece in pieces for fact in inference.extract_facts(self.llm, extraction_prompt, piece, model=llm_model)))
        if not facts:
            return nothing_learnt()
        def chats_first() -> None:  # background learning waits for recalls in flight
            if outbox is not None:
                self.foreground.wait_idle(self.config.outbox.yield_seconds)

        chats_first()
        fact_vectors = self._embed(facts)
        with self.store.scope_lock(scope):
            existing = self._similar_existing(scope, facts, fact_vectors, between=chats_first)
            if existing:
                shown = [{"id": str(i), "text": r.memory} for i, r in enumerate(existing)]
                system = self.config.custom_update_memory_prompt or prompts.UPDATE_MEMORY_PROMPT
                decisions = inference.reconcile(self.llm, system, shown, facts, model=llm_model)
            else:  # nothing to update or delete: every fact is new, no second call needed
                decisions = [inference.Decision("ADD", fact, None) for fact in facts]
            changes = self._changes_for(decisions, existing, scope, meta, dict(zip(facts, fact_vectors)), when)
            if not changes:
                return nothing_learnt()
            chats_first()
            return self.store.apply(changes, actor_id=actor, outbox_done=outbox)

    def _similar_existing(self, scope: Scope, facts: list[str], vectors: np.ndarray,
                          between: Callable[[], None] = lambda: None) -> list[MemoryRecord]:
        keys: dict[Any, None] = {}
        for fact, vector in zip(facts, vectors):
            between()
            found = self.store.search(scope, None, vector, fact, SIMILAR_PER_FACT * 4, exact_scope=True)
            keys.update(dict.fromkeys(r.key for r in fuse(found, self.config.retrieval)[:SIMILAR_PER_FACT]))
        records = self.store.fetch(list(keys)[:MAX_EXISTING_SHOWN])
        return [records[k] for k in keys if k in records]

    def _changes_for(
        self, decisions: list[inference.Decision], existing: list[MemoryRecord], scope: Scope,
        meta: dict[str, Any], known_vectors: dict[str, np.ndarray], when: str | None = None,
    ) -> list[Change]:
        """Turn the LLM's decisions into store changes, touching only the memories it was shown.
        New memories carry the conversation's time (``when``); updates are dated now."""
        by_alias = {str(i): r for i, r in enumerate(existing)}
        now = utc_now()
        changes: list[Change] = []
        touched: set[str] = set()
        pending_hashes = {r.hash for r in existing}
        for d in decisions:
            target = by_alias.get(d.alias or "")
            if d.event == "UPDATE" and target is None:
                log.info("reconcile: UPDATE of unknown id %r kept as a new memory", d.alias)
                d = inference.Decision("ADD", d.text, None)
            if d.event == "ADD":
                h = content_hash(d.text)
                if h in pending_hashes:
                    continue  # exact duplicate of an existing or already-added memory
                pending_hashes.add(h)
                changes.append(Change("ADD", self._new_record(d.text, scope, meta, when or now)))
            elif d.event == "UPDATE" and target is not None and target.id not in touched:
                if content_hash(d.text) == target.hash or content_hash(d.text) in pending_hashes:
                    continue
                touched.add(target.id)
                pending_hashes.add(content_hash(d.text))
                updated = MemoryRecord(
                    id=target.id, memory=d.text, hash=content_hash(d.text), metadata={**target.metadata, **meta},
                    user_id=target.user_id, agent_id=target.agent_id, run_id=target.run_id,
                    created_at=target.created_at, updated_at=now,
                )
                changes.append(Change("UPDATE", updated))
            elif d.event == "DELETE" and target is not None and target.id not in touched:
                touched.add(target.id)
                changes.append(Change("DELETE", target))
            elif d.event == "DELETE":
                log.info("reconcile: DELETE of unknown id %r ignored", d.alias)
        missing = [c.record.memory for c in changes if c.event != "DELETE" and c.record.memory not in known_vectors]
        if missing:
            known_vectors.update(zip(missing, self._embed(missing)))
        for c in changes:
            if c.event != "DELETE":
                c.vector = known_vectors[c.record.memory]
        return changes

    # -- search and reads ----------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
        limit: int | None = None,
        top_k: int | None = None,
        threshold: float | None = None,
    ) -> dict[str, Any]:
        """Hybrid search within a scope; ``{"results": [{... "score"}]}``, best first."""
        request = SearchRequest(query, user_id, agent_id, run_id, filters, limit, top_k, threshold)
        return {"results": [h.to_dict() for h in self.search_hits(request)]}

    def search_hits(self, request: SearchRequest, *, timings: dict[str, float] | None = None) -> list[SearchHit]:
        """``search`` as typed hits (with both signals), for faces and benchmarks; ``timings``
        receives ``embed_ms`` and ``search_ms``."""
        query, threshold = request.query, request.threshold
        if not isinstance(query, str) or not query.strip():
            raise ValidationError("query must be a non-empty string", param="query")
        check_encodable(query, "query")
        n = check_max_limit(resolve_limit(request.limit, request.top_k, 10), self.config.server.max_limit,
                            top_k=request.limit is None and request.top_k is not None)
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
            raise ValidationError(f"threshold must be a number, got {threshold!r}", param="threshold")
        scope, parsed = resolve_scope(request.user_id, request.agent_id, request.run_id, request.filters, required="search")
        with self.foreground.running():
            return self._search_hits(request, n, threshold, scope, parsed, timings)

    def _search_hits(self, request: SearchRequest, n: int, threshold: float | None, scope: Scope, parsed: Filter | None,
                     timings: dict[str, float] | None) -> list[SearchHit]:
        query = request.query
        started = time.perf_counter()
        vector = self._queries.embed_one(query)  # concurrent searches share one model call
        embedded = time.perf_counter()
        settings = self.config.retrieval
        found = self.store.search(scope, parsed, vector, query, max(settings.candidates, n))
        ranked = fuse(found, settings)
        period = period_in(query, lambda: self._latest_time(scope)) if settings.time_bonus else None
        records: dict[Any, MemoryRecord] = {}
        words = shipped_word_vectors() if settings.alignment_weight else None
        if words is not None or period is not None or (settings.speaker_bonus and may_name_someone(query)):
            pool = ranked[: max(3 * n, 30)]  # what a bonus can lift into the top n
            records = self.store.fetch([r.key for r in pool])
            aligned = None
            if words is not None:
                present = [r.key for r in pool if r.key in records]
                aligned = dict(zip(present, alignment(query, [records[k].memory for k in present], words)))
            ranked = boosted(pool, records, query, period, settings, aligned)
        ranked = [r for r in ranked if threshold is None or r.score >= threshold][:n]
        if not records:
            records = self.store.fetch([r.key for r in ranked])
        if timings is not None:
            timings["embed_ms"] = (embedded - started) * 1000
            timings["search_ms"] = (time.perf_counter() - embedded) * 1000
        return [SearchHit(records[r.key], r.score, r.dense, r.keyword) for r in ranked if r.key in records]

    def _latest_time(self, scope: Scope) -> _dt.datetime | None:
        """When the scope's latest memory is from: what "last week" in a query counts back from.
        Read at most once a minute per scope (chat turns say "last week" often, and finding the
        latest of a 10k-memory scope sorts it: 4% of the server's CPU under load when read every
        time); a minute cannot move "last week"."""
        now = time.monotonic()
        cached = self._latest.get(scope.key)
        if cached is None or now - cached[0] > 60:
            latest = self.store.list(scope, None, 1)
            if len(self._latest) > 10_000:
                self._latest.clear()
            cached = self._latest[scope.key] = (now, parse_time(latest[0].created_at) if latest else None)
        return cached[1]

    def get(self, memory_id: str) -> dict[str, Any]:
        return self._require(memory_id).to_dict()

    def _require(self, memory_id: str) -> MemoryRecord:
        if not isinstance(memory_id, str) or not memory_id:
            raise ValidationError("memory_id must be a non-empty string", param="memory_id")
        record = self.store.get(memory_id)
        if record is None:
            raise NotFoundError(f"memory {memory_id!r} not found", param="memory_id")
        return record

    def get_all(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
        limit: int | None = DEFAULT_LIST_LIMIT,
        top_k: int | None = None,
        oldest_first: bool = False,
    ) -> dict[str, Any]:
        """Memories of a scope, newest first (``oldest_first``: in the order they were said):
        ``{"results": [...]}``."""
        n = top_k if top_k is not None else limit
        if n is not None:
            check_max_limit(check_limit(n), self.config.server.max_limit, top_k=top_k is not None)
        if not isinstance(oldest_first, bool):
            raise ValidationError("oldest_first must be true or false", param="oldest_first")
        scope, parsed = resolve_scope(user_id, agent_id, run_id, filters, required="get_all")
        return {"results": [r.to_dict() for r in self.store.list(scope, parsed, n, oldest_first=oldest_first)]}

    def get_page(
        self, *, page: int, page_size: int, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
        filters: Mapping[str, Any] | None = None, oldest_first: bool = False,
    ) -> dict[str, Any]:
        """One page of ``get_all`` (``page`` from 1) and how many there are in all: ``{"count",
        "results"}``, reading only that page's rows (mem0's paged ``get_all``, the inspector)."""
        check_limit(page, "page")
        check_limit(page_size, "page_size")
        scope, parsed = resolve_scope(user_id, agent_id, run_id, filters, required="get_all")
        count = self.store.count_where(scope, parsed)
        offset = (page - 1) * page_size
        rows = self.store.list(scope, parsed, page_size, oldest_first=oldest_first, offset=offset) if offset < count else []
        return {"count": count, "results": [r.to_dict() for r in rows]}

    def update(self, memory_id: str, data: str | None = None, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Change a memory's text and/or replace its metadata (``data=None`` keeps the text);
        returns the record.

        The row is re-read under the scope's lock, and the new text is embedded only when it
        differs from that row: a decision taken on a read made before the lock would write a
        stale text back over a concurrent update (a lost update) or skip a needed embedding.
        """
        if data is None and metadata is None:
            raise ValidationError("give the new text (data) and/or metadata", param="data")
        if data is not None and (not isinstance(data, str) or not data.strip()):
            raise ValidationError("data must be a non-empty string", param="data")
        if data is not None:
            check_text(data, "data", self.config.server.max_memory_chars)
        new_metadata = None if metadata is None else self._checked_metadata(metadata)
        scope = self._require(memory_id).scope  # a memory never changes scope
        with self.store.scope_lock(scope):
            record = self._require(memory_id)
            text = record.memory if data is None else data.strip()
            updated = MemoryRecord(
                id=record.id, memory=text, hash=content_hash(text),
                metadata=record.metadata if new_metadata is None else new_metadata,
                user_id=record.user_id, agent_id=record.agent_id, run_id=record.run_id,
                created_at=record.created_at, updated_at=utc_now(),
            )
            vector = self._embed([text])[0] if text != record.memory else None
            (applied,) = self.store.apply([Change("UPDATE", updated, vector)])
        if applied.event == "NONE":
            raise ValidationError(f"this scope already holds a memory with the text {text!r}", param="data")
        return applied.record.to_dict()

    def delete(self, memory_id: str) -> dict[str, str]:
        record = self._require(memory_id)
        with self.store.scope_lock(record.scope):
            self.store.apply([Change("DELETE", record)])
        return {"message": "Memory deleted successfully!"}

    def delete_all(
        self,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, str]:
        """Delete every memory of the scope (matching ``filters``) in one transaction, each with
        its DELETE in history; ``progress(done, total)`` as it goes (the CLI's progress bar)."""
        scope, parsed = resolve_scope(user_id, agent_id, run_id, filters, required="delete_all")
        self.store.delete_where(scope, parsed, progress=progress)
        return {"message": "Memories deleted successfully!"}

    def history(self, memory_id: str) -> list[dict[str, Any]]:
        """Every event of one memory, oldest first (also after it was deleted)."""
        if not isinstance(memory_id, str) or not memory_id:
            raise ValidationError("memory_id must be a non-empty string", param="memory_id")
        events = self.store.history(memory_id)
        if not events and self.store.get(memory_id) is None:
            raise NotFoundError(f"memory {memory_id!r} not found", param="memory_id")
        return [e.to_dict() for e in events]

    # -- export / import ----------------------------------------------------------------------

    def export(
        self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
        filters: Mapping[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every memory (of a scope, or of the whole store) with its history: one dict per
        memory, oldest first (the order an import writes them back in, so each conversation is
        rebuilt in its own order), the JSONL line format of ``import_records`` and the server's export."""
        scope, parsed = resolve_scope(user_id, agent_id, run_id, filters, required=None)
        for record in reversed(self.store.list(scope, parsed, None)):
            yield {**record.to_dict(), "history": [e.to_dict() for e in self.store.history(record.id)]}

    def import_records(self, records: Iterable[Mapping[str, Any]], *, batch_size: int = 1000) -> dict[str, int]:
        """Restore exported memories (ids, scopes, metadata, timestamps and history kept),
        embedding their text with this engine's embedder. A memory whose id or text is already
        in its scope is skipped, so an import can be re-run safely."""
        counts = {"imported": 0, "skipped": 0}
        batch: list[Mapping[str, Any]] = []

        def flush() -> None:
            if not batch:
                return
            vectors = self._embed([str(item["memory"]) for item in batch])
            changes = [self._import_change(item, vector) for item, vector in zip(batch, vectors)]
            for applied in self.store.apply(changes):
                counts["imported" if applied.event == "ADD" else "skipped"] += 1
            batch.clear()

        for index, item in enumerate(records):
            if not isinstance(item, Mapping) or not isinstance(item.get("memory"), str) or not item["memory"].strip():
                raise ValidationError(f"record {index}: needs a non-empty 'memory' string", param="records")
            if not any(item.get(f) for f in SCOPE_FIELDS):
                raise ScopeError(f"record {index}: needs at least one of user_id, agent_id, run_id", param="records")
            try:
                for field in SCOPE_FIELDS:
                    check_scope_id(field, item.get(field) or None)
                check_text(item["memory"], "memory", self.config.server.max_memory_chars)
                self._checked_metadata(item.get("metadata"))
                check_encodable(item, "the record")
            except ValidationError as exc:
                raise ValidationError(f"record {index}: {exc.message}", param="records", code=exc.code) from None
            batch.append(item)
            if len(batch) >= batch_size:
                flush()
        flush()
        return counts

    def _import_change(self, item: Mapping[str, Any], vector: np.ndarray) -> Change:
        now = utc_now()
        text = str(item["memory"]).strip()
        record = MemoryRecord(
            id=str(item.get("id") or uuid.uuid4()), memory=text, hash=content_hash(text),
            metadata=check_metadata(item.get("metadata")), user_id=item.get("user_id"), agent_id=item.get("agent_id"),
            run_id=item.get("run_id"), created_at=str(item.get("created_at") or now), updated_at=str(item.get("updated_at") or now),
        )
        history = None
        if isinstance(item.get("history"), list) and item["history"]:
            history = [
                HistoryEvent(id=str(e.get("id") or uuid.uuid4()), memory_id=record.id, event=str(e.get("event", "ADD")),
                             old_memory=e.get("old_memory"), new_memory=e.get("new_memory"), actor_id=e.get("actor_id"),
                             created_at=str(e.get("created_at") or now))
                for e in item["history"]
            ]
        return Change("ADD", record, vector, history=history)

    # -- what the faces need beyond memories ---------------------------------------------------

    def enqueue(self, exchange: Mapping[str, Any], *, exchange_id: str | None = None,
                idempotency_key: str | None = None) -> str:
        """Queue an exchange to learn from in the background (``{"scope", "messages",
        "metadata"?, "model"?}``): the one way a chat's exchange reaches learning. Returns its
        id (``exchange_id`` when given: a chat names it before its answer streams); an id or
        ``idempotency_key`` seen before returns the first exchange's id and queues nothing.
        ``OutboxFullError`` beyond ``outbox.max_queued`` / ``max_queued_mb``."""
        if not isinstance(exchange, Mapping) or not isinstance(exchange.get("scope"), Mapping):
            raise ValidationError("an exchange is an object with a scope object and messages", param="scope")
        ids = exchange["scope"]
        scope, _ = resolve_scope(ids.get("user_id"), ids.get("agent_id"), ids.get("run_id"), None, required="an exchange")
        check_encodable(normalize_messages(exchange.get("messages")), "messages")  # refused now, not retried in the background
        model = exchange.get("model")
        if model is not None and not isinstance(model, str):
            raise ValidationError("model must be a string", param="model")
        payload = {"scope": scope.as_dict(), "messages": exchange["messages"],
                   "metadata": self._checked_metadata(exchange.get("metadata")), "model": model}
        settings = self.config.outbox
        bounds = OutboxBounds(settings.max_queued, int(settings.max_queued_mb * 1024 * 1024))
        return self.store.outbox.put(payload, item_id=exchange_id, idempotency_key=idempotency_key, bounds=bounds)

    def exchange_states(self, exchange_ids: Sequence[str]) -> dict[str, ExchangeState]:
        """``queued``, ``learnt`` or ``dead`` for each exchange id this store knows (an exchange
        learnt from is remembered for a day); unknown ids are absent."""
        return self.store.outbox.states(exchange_ids)

    def outbox_status(self) -> dict[str, Any]:
        """``pending``, ``in_progress``, ``retrying``, ``dead``, ``oldest_age_seconds``, ``last_error``."""
        return self.store.outbox.stats()

    def dead_exchanges(self, limit: int = 100) -> list[OutboxItem]:
        """Exchanges set aside after failing for good, oldest first, with their last error."""
        return self.store.outbox.dead(check_limit(limit))

    def requeue(self, item_ids: Sequence[str] | None = None) -> int:
        """Put dead exchanges (all, or these ids) back in the queue; returns how many."""
        return self.store.outbox.requeue(item_ids)

    def entities(self) -> list[tuple[str, str, int]]:
        """``(type, id, memory count)`` for every user/agent/run with memories (mem0's users)."""
        return self.store.entities()

    def status(self) -> dict[str, Any]:
        """What this engine holds and does: ``embedder`` (the model the store's vectors are
        from), ``memories``, ``scopes`` (users, agents, runs with memories), ``outbox``, and
        ``changes_today``: ADD/UPDATE/DELETE history events dated since midnight UTC (learnt or
        made by hand; an add's event carries the time it was said, so imported history counts on
        its own dates)."""
        entities = self.store.entities()
        midnight = _dt.datetime.now(_dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        changes = self.store.changes_since(midnight.isoformat(timespec="microseconds"))
        return {
            "embedder": self.store.embedding_model() or f"{self.embedder.model_id} (no memory stored yet)",
            "memories": self.store.count(),
            "scopes": {kind + "s": sum(1 for t, _, _ in entities if t == kind) for kind in ("user", "agent", "run")},
            "outbox": self.outbox_status(),
            "changes_today": {event: changes.get(event, 0) for event in ("ADD", "UPDATE", "DELETE")},
        }

    def ping(self) -> int:
        """A round trip to the store (readiness checks); returns how many memories it holds."""
        return self.store.count()

    def bulk_loading(self, rows: int) -> ContextManager[None]:
        """Wrap an import of ``rows`` memories: a big one lets the store rebuild its index once
        at the end instead of row by row (PostgreSQL's HNSW)."""
        return self.store.bulk_load() if rows >= BULK_LOAD_ROWS else nullcontext()

    def reset(self) -> None:
        """Empty the store: every memory, vector and history row."""
        self.store.reset()
        self._bound = False

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _threaded(name: str) -> Any:
    method = getattr(Memory, name)

    @functools.wraps(method)
    async def call(self: AsyncMemory, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.sync, name), *args, **kwargs)

    return call


class AsyncMemory:
    """``Memory`` with ``await``: each call runs in a worker thread, so an event loop never
    blocks on SQLite, the embedder or the memory LLM."""

    def __init__(self, config: MemlaneConfig | Mapping[str, Any] | str | None = None, *, memory: Memory | None = None) -> None:
        self.sync = memory or Memory(config)
        self.config = self.sync.config

    @classmethod
    async def from_config(cls, config: Mapping[str, Any]) -> AsyncMemory:
        return cls(memory=await asyncio.to_thread(Memory, config))

    add = _threaded("add")
    search = _threaded("search")
    get = _threaded("get")
    get_all = _threaded("get_all")
    update = _threaded("update")
    delete = _threaded("delete")
    delete_all = _threaded("delete_all")
    history = _threaded("history")
    reset = _threaded("reset")
    import_records = _threaded("import_records")
    enqueue = _threaded("enqueue")
    exchange_states = _threaded("exchange_states")
    outbox_status = _threaded("outbox_status")
    dead_exchanges = _threaded("dead_exchanges")
    requeue = _threaded("requeue")
    entities = _threaded("entities")
    ping = _threaded("ping")
    warm_up = _threaded("warm_up")

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncMemory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["AsyncMemory", "Memory", "SearchRequest"]
