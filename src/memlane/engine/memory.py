"""``Memory``: the engine every face (client, server, CLI) drives.

It holds one store, one embedder and one memory LLM, checks what each call is given, and hands
each behaviour to a module with one job: recall (memlane.engine.recall), learning
(memlane.engine.learning), export and import (memlane.engine.transfer). Reads, updates, deletes
and the outbox's hand-off it does itself. The store owns persistence, the embedder vectors, the
LLM the two JSON stages. See product.md section 2 for the contract.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import functools
import logging
import threading
from typing import Any, Callable, ContextManager, Iterable, Iterator, Mapping, Sequence

import numpy as np

from memlane import registry
from memlane.config import MemlaneConfig, ProviderSection, load_config
from memlane.embedders.base import Embedder
from memlane.engine import transfer
from memlane.engine.foreground import Foreground
from memlane.engine.guidance import check_categories, check_instructions, resolve
from memlane.engine.expiry import visible
from memlane.engine.identity import Lifetime, content_hash, new_record
from memlane.engine.immutable import refuse_update
from memlane.engine.learning import CallTally, Learning, Learnt
from memlane.engine.lifecycle import LIFECYCLE_METHODS, LifecycleMethods
from memlane.engine.messages import normalize_messages
from memlane.engine.recall import Recall, SearchRequest
from memlane.engine.reranking import Reranking
from memlane.engine.search_options import categories_filter, check_fields, check_latest_only, project
from memlane.engine.validation import (check_encodable, check_expiration_date, check_flag, check_limit, check_max_limit,
                                       check_metadata, check_text, check_timestamp, resolve_scope)
from memlane.errors import NotFoundError, ValidationError
from memlane.llms.base import LLM
from memlane.query.filters import Filter, all_of
from memlane.records import MemoryRecord, Scope, SearchHit, utc_now
from memlane.stores.base import Applied, Change, MemoryStore
from memlane.stores.outbox import ExchangeState, OutboxBounds, OutboxItem

log = logging.getLogger("memlane.memory")

DEFAULT_LIST_LIMIT = 100


class _Unset:
    """The type of ``UNSET``: an argument not given, where ``None`` means something (clear it)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()

#: How the bundled MiniLM is recorded in a store (``SentenceTransformerEmbedder.model_id``).
MINILM_MODEL_ID = "sentence_transformers/all-MiniLM-L6-v2"


def default_embedder(recorded: str | None) -> ProviderSection:
    """The embedder when the config names none: a store built with the bundled MiniLM keeps it
    (its vectors are in MiniLM's space; mixing spaces would make search meaningless), anything
    else gets the static default. ``memlane memories export``/``import`` moves a store over."""
    if recorded == MINILM_MODEL_ID:
        log.info("this store was built with all-MiniLM-L6-v2, so it keeps using it (the default for new stores is "
                 "the static model; export and import the memories into a new store to move over)")
        return ProviderSection(provider="sentence_transformers")
    return ProviderSection(provider="model2vec")


class Memory(LifecycleMethods):
    """Long-term memory over one store, one embedder and one LLM (batch edits, feedback and
    webhooks: memlane.engine.lifecycle).

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
        #: the configured reranker as a search step (None: searches keep the fused order)
        self.reranking = None if cfg.reranker is None else Reranking(
            registry.get_factory("reranker", cfg.reranker.provider)(cfg.reranker.config, llm=self.llm, **context),
            cfg.reranker.provider)
        self._bound = False
        self._bind_lock = threading.Lock()
        #: recalls in flight; background learning waits for them (see memlane.engine.foreground)
        self.foreground = Foreground()
        self._recall = Recall(self.store, self._embed, cfg, self.foreground, self.reranking)
        self._learning = Learning(self.store, self.llm, self._embed, cfg, self.foreground)

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
        if self.reranking is not None:
            try:
                self.reranking.warm_up()  # a local cross-encoder loads now, not in the first search
            except Exception as exc:  # noqa: BLE001
                log.warning("reranker warm-up failed; searches keep the fused order until it works: %s", exc)

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
        expiration_date: str | _dt.date | None = None,
        immutable: bool = False,
        custom_instructions: str | None = None,
        custom_categories: Sequence[Any] | None = None,
    ) -> dict[str, Any]:
        """Remember what ``messages`` say; returns ``{"results": [{"id","memory","event",...}]}``.

        ``timestamp``: when the conversation happened (Unix seconds as mem0's Platform takes
        it, ISO 8601 or a datetime; default now). New memories carry it as ``created_at``, the
        keyword context links only turns close in time, and fact extraction resolves relative
        dates ("yesterday") against it. ``llm_model`` overrides the memory LLM's model for this
        call (the proxy passes the chat's own model when the config names none).

        ``expiration_date`` (``YYYY-MM-DD``: through that day, UTC; or an ISO 8601 datetime):
        the memories this call makes are not recalled, searched or listed after it unless
        asked for (``show_expired``); ``get`` still returns them. ``immutable``: reconciliation
        never updates or deletes them (a contradicting fact is added beside), and ``update``
        refuses to (memlane.engine.immutable).

        ``custom_instructions`` / ``custom_categories`` (``infer=True``): what this add's
        extraction keeps and how it files facts, instead of the project's (``update_project``)
        and the config's (memlane.engine.guidance).
        """
        scope, _ = resolve_scope(user_id, agent_id, run_id, filters, required="add")
        guidance = None
        if custom_instructions is not None or custom_categories is not None:
            guidance = resolve(self.config, self.store.project_settings(), check_instructions(custom_instructions), custom_categories)
        meta = self._checked_metadata(metadata)
        when = check_timestamp(timestamp)
        lifetime = Lifetime(check_expiration_date(expiration_date), bool(check_flag(immutable, "immutable")))
        turns = self._checked_turns(messages, stored=not infer)
        actor = next((m.get("name") for m in turns if m["role"] == "user" and m.get("name")), None)
        if infer:
            applied = self._learning.add_inferred(turns, scope, meta, prompt, actor, llm_model, when=when, lifetime=lifetime,
                                                  guidance=guidance).applied
        else:
            applied = self._add_verbatim(turns, scope, meta, actor, when=when, lifetime=lifetime)
        return {"results": [self._applied_dict(a) for a in applied if a.event != "NONE"]}

    def get_project(self, fields: Sequence[str] | None = None) -> dict[str, Any]:
        """The project's settings, as mem0's ``get_project`` answers: ``custom_instructions`` and
        ``custom_categories`` (the project's own, else the config's; None when neither is set)."""
        own = self.store.project_settings()
        inference = self.config.inference
        settings = {"custom_instructions": own.get("custom_instructions", inference.custom_instructions),
                    "custom_categories": own.get("custom_categories", inference.custom_categories)}
        if fields:
            unknown = [f for f in fields if f not in settings]
            if unknown:
                raise ValidationError(f"unknown project field {unknown[0]!r}: this store keeps custom_instructions and custom_categories",
                                      param="fields")
            return {f: settings[f] for f in fields}
        return settings

    def update_project(self, *, custom_instructions: str | None = None, custom_categories: Sequence[Any] | None = None) -> dict[str, Any]:
        """Set the project's instructions and/or categories for every later extraction (kept in
        the store); an empty string or list clears one, falling back to the config's."""
        if custom_instructions is None and custom_categories is None:
            raise ValidationError("update_project needs custom_instructions or custom_categories", param="custom_instructions")
        settings = self.store.project_settings()
        if custom_instructions is not None:
            settings["custom_instructions"] = check_instructions(custom_instructions)
        if custom_categories is not None:
            check_categories(custom_categories)
            settings["custom_categories"] = list(custom_categories) or None
        settings = {k: v for k, v in settings.items() if v is not None}
        self.store.set_project_settings(settings)
        return {"message": "Updated project settings", **self.get_project()}

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

    def _add_verbatim(self, turns: list[dict[str, Any]], scope: Scope, meta: dict[str, Any], actor: str | None,
                      *, when: str | None = None, lifetime: Lifetime | None = None) -> list[Applied]:
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
            changes.append(Change("ADD", new_record(text, scope, record_meta, now, lifetime), vector))
        with self.store.scope_lock(scope):
            return self.store.apply(changes, actor_id=actor)

    def learn(self, item: OutboxItem) -> Learnt:
        """Learn from one outbox exchange; the item leaves the outbox in the commit that applies
        what was learnt (or on its own when there was nothing to learn), never before. Says
        what changed and which extracted facts were dropped, and why."""
        return self._learning.learn(item)

    def learn_batch(self, items: Sequence[OutboxItem], *, tally: CallTally | None = None) -> list[Learnt]:
        """Learn from several exchanges of one scope together, in one commit that removes them
        all from the outbox (memlane.engine.learning says when they may go together, and what
        stays the same as one at a time); what each did, in order. ``tally`` counts the
        memory-LLM calls made."""
        return self._learning.learn_batch(items, tally)

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
        rerank: bool | None = None,
        show_expired: bool = False,
        categories: Sequence[str] | None = None,
        reference_date: str | int | float | _dt.datetime | None = None,
        keyword_search: bool | None = None,
        fields: Sequence[str] | None = None,
        latest_only: bool | None = None,
    ) -> dict[str, Any]:
        """Hybrid search within a scope; ``{"results": [{... "score"}]}``, best first.

        With a reranker configured (``reranker`` section) its relevance is each result's
        ``score``, repeated as ``rerank_score`` beside the fused ``hybrid_score``; ``rerank=False``
        keeps the fused order for this search (``True`` without a reranker changes nothing).

        mem0's options: ``show_expired`` (expired memories too), ``categories`` (memories whose
        ``metadata.categories`` holds one of them), ``reference_date`` (what "last week" in the
        query counts back from; default the scope's latest memory), ``keyword_search=False``
        (the dense signal alone; memlane's search is hybrid otherwise), ``fields`` (the keys each
        result keeps) and ``latest_only`` (accepted: every memory is its latest version here)."""
        if rerank is not None and not isinstance(rerank, bool):
            raise ValidationError(f"rerank must be true or false, got {rerank!r}", param="rerank")
        check_latest_only(latest_only)
        keep = check_fields(fields)
        request = SearchRequest(query, user_id, agent_id, run_id, filters, limit, top_k, threshold, rerank, show_expired=show_expired,
                                reference_date=reference_date, keyword_search=keyword_search, categories=categories)
        return {"results": [project(h.to_dict(), keep) for h in self.search_hits(request)]}

    def search_hits(self, request: SearchRequest, *, timings: dict[str, float] | None = None) -> list[SearchHit]:
        """``search`` as typed hits (with both signals), for faces and benchmarks; ``timings``
        receives ``embed_ms`` and ``search_ms``."""
        return self._recall.search_hits(request, timings=timings)

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
        show_expired: bool = False,
        categories: Sequence[str] | None = None,
        latest_only: bool | None = None,
    ) -> dict[str, Any]:
        """Memories of a scope, newest first (``oldest_first``: in the order they were said):
        ``{"results": [...]}``. Expired ones only with ``show_expired``; ``categories`` and
        ``latest_only`` as for ``search``."""
        n = top_k if top_k is not None else limit
        if n is not None:
            check_max_limit(check_limit(n), self.config.server.max_limit, top_k=top_k is not None)
        if not isinstance(oldest_first, bool):
            raise ValidationError("oldest_first must be true or false", param="oldest_first")
        scope, parsed = self._listed(user_id, agent_id, run_id, filters, show_expired, categories, latest_only)
        return {"results": [r.to_dict() for r in self.store.list(scope, parsed, n, oldest_first=oldest_first)]}

    def _listed(self, user_id: str | None, agent_id: str | None, run_id: str | None, filters: Mapping[str, Any] | None,
                show_expired: bool, categories: Sequence[str] | None, latest_only: bool | None) -> tuple[Scope, Filter | None]:
        """The scope and the store filter of a list: the caller's, its categories, and expiry."""
        check_latest_only(latest_only)
        scope, parsed = resolve_scope(user_id, agent_id, run_id, filters, required="get_all")
        return scope, visible(self.store, scope, all_of(parsed, categories_filter(categories)), show_expired)

    def get_page(
        self, *, page: int, page_size: int, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
        filters: Mapping[str, Any] | None = None, oldest_first: bool = False, show_expired: bool = False,
        categories: Sequence[str] | None = None, latest_only: bool | None = None,
    ) -> dict[str, Any]:
        """One page of ``get_all`` (``page`` from 1) and how many there are in all: ``{"count",
        "results"}``, reading only that page's rows (mem0's paged ``get_all``, the inspector)."""
        check_limit(page, "page")
        check_limit(page_size, "page_size")
        scope, parsed = self._listed(user_id, agent_id, run_id, filters, show_expired, categories, latest_only)
        count = self.store.count_where(scope, parsed)
        offset = (page - 1) * page_size
        rows = self.store.list(scope, parsed, page_size, oldest_first=oldest_first, offset=offset) if offset < count else []
        return {"count": count, "results": [r.to_dict() for r in rows]}

    def update(self, memory_id: str, data: str | None = None, metadata: Mapping[str, Any] | None = None, *,
               expiration_date: str | _dt.date | None | _Unset = UNSET) -> dict[str, Any]:
        """Change a memory's text and/or replace its metadata (``data=None`` keeps the text)
        and/or its ``expiration_date`` (``None`` clears it: the memory is recalled again; not
        given: kept); returns the record. An immutable memory is refused (a ``ValidationError``
        naming it): delete it and add the new text instead.

        The row is re-read under the scope's lock, and the new text is embedded only when it
        differs from that row: a decision taken on a read made before the lock would write a
        stale text back over a concurrent update (a lost update) or skip a needed embedding.
        """
        sets_expiry = not isinstance(expiration_date, _Unset)
        if data is None and metadata is None and not sets_expiry:
            raise ValidationError("give the new text (data), metadata and/or expiration_date", param="data")
        if data is not None and (not isinstance(data, str) or not data.strip()):
            raise ValidationError("data must be a non-empty string", param="data")
        if data is not None:
            check_text(data, "data", self.config.server.max_memory_chars)
        new_metadata = None if metadata is None else self._checked_metadata(metadata)
        new_expiry = check_expiration_date(expiration_date) if not isinstance(expiration_date, _Unset) else None
        record = self._require(memory_id)
        refuse_update(record)
        with self.store.scope_lock(record.scope):  # a memory never changes scope
            record = self._require(memory_id)
            refuse_update(record)
            text = record.memory if data is None else data.strip()
            updated = MemoryRecord(
                id=record.id, memory=text, hash=content_hash(text),
                metadata=record.metadata if new_metadata is None else new_metadata,
                user_id=record.user_id, agent_id=record.agent_id, run_id=record.run_id,
                created_at=record.created_at, updated_at=utc_now(), expiration_date=new_expiry,
            )
            vector = self._embed([text])[0] if text != record.memory else None
            (applied,) = self.store.apply([Change("UPDATE", updated, vector, sets_expiry=sets_expiry)])
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

    def delete_users(
        self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """mem0's ``delete_users``: every memory of the user, agent or run given (any of its
        scopes: a user's memories with every agent), or with none given every memory of the
        store, in one transaction, each with its DELETE in history. ``{"message", "deleted"}``."""
        scope, _ = resolve_scope(user_id, agent_id, run_id, None, required=None)
        deleted = self.store.delete_where(scope, None, progress=progress)
        message = "Entity deleted successfully." if not scope.is_empty() else "All users, agents, apps and runs deleted."
        return {"message": message, "deleted": deleted}

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
        yield from transfer.export_records(self.store, scope, parsed)

    def import_records(self, records: Iterable[Mapping[str, Any]], *, batch_size: int = 1000) -> dict[str, int]:
        """Restore exported memories (ids, scopes, metadata, timestamps and history kept),
        embedding their text with this engine's embedder. A memory whose id or text is already
        in its scope is skipped, so an import can be re-run safely."""
        return transfer.import_records(self.store, self._embed, records, limits=self.config.server, batch_size=batch_size)

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

    def rerank_stats(self) -> dict[str, Any]:
        """How the reranker did: ``reranked``, ``rerank_fallbacks`` (searches that kept the fused
        order because it failed or timed out), ``last_rerank_error``; zeros without one."""
        if self.reranking is None:
            return {"reranked": 0, "rerank_fallbacks": 0, "last_rerank_error": None}
        return self.reranking.stats()

    def ping(self) -> int:
        """A round trip to the store (readiness checks); returns how many memories it holds."""
        return self.store.count()

    def bulk_loading(self, rows: int) -> ContextManager[None]:
        """Wrap an import of ``rows`` memories: a big one lets the store rebuild its index once
        at the end instead of row by row (PostgreSQL's HNSW)."""
        return transfer.bulk_loading(self.store, rows)

    def reset(self) -> None:
        """Empty the store: every memory, vector and history row."""
        self.store.reset()
        self._bound = False

    def close(self) -> None:
        if self.reranking is not None:
            self.reranking.close()
        release = getattr(self.llm, "release_idle", None)
        if release is not None:  # its kept-alive connections to the model server (a call in flight keeps them)
            release()
        close_embedder = getattr(self.embedder, "close", None)
        if close_embedder is not None:  # an HTTP embedder's kept-alive connections (memlane.embedders.base)
            close_embedder()
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
    delete_users = _threaded("delete_users")
    history = _threaded("history")
    get_project = _threaded("get_project")
    update_project = _threaded("update_project")
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


for _name in LIFECYCLE_METHODS:  # batch edits, feedback, webhooks: each with await too
    setattr(AsyncMemory, _name, _threaded(_name))


__all__ = ["AsyncMemory", "Memory", "SearchRequest"]
