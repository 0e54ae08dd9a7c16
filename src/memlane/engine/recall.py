"""Recall: one search, from a query to the best hits of a scope.

The query is embedded (concurrent searches share one model call), the store runs its filtered
hybrid search, and the candidates are fused into one score (memlane.engine.ranking). Bonuses for
a period or day the query names, a speaker it may name, the role it asks about (the user's turns
or the assistant's replies), a name it asks for, the stance it asks about (an aversion or a
liking), and word alignment can lift a memory only from
the pool just below the cut, so they never cost a second search. A configured reranker then
re-orders the fused top candidates (memlane.engine.reranking; its failure keeps the fused
order). While a recall runs,
background learning waits (memlane.engine.foreground): chats come first. Expired memories are
filtered inside the store's search (memlane.engine.expiry), and mem0's other options
(``categories``, ``reference_date``, ``keyword_search``) are read here.
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from memlane.config import MemlaneConfig
from memlane.embedders.batching import QueryBatcher
from memlane.engine.alignment import alignment, shipped_word_vectors
from memlane.engine.expiry import visible
from memlane.engine.foreground import Foreground
from memlane.engine.naming import naming
from memlane.engine.ranking import boosted, fuse, may_name_someone
from memlane.engine.reranking import Reranking
from memlane.engine.search_options import categories_filter, reference_time
from memlane.engine.validation import check_encodable, check_flag, check_max_limit, resolve_limit, resolve_scope
from memlane.errors import ValidationError
from memlane.query.filters import Filter, all_of
from memlane.query.intent import asked_role, asks_for_name
from memlane.query.stance import asked_stance, stances_in
from memlane.query.when import parse_time, period_in
from memlane.records import MemoryRecord, Scope, SearchHit
from memlane.stores.base import MemoryStore


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
    #: None: rerank when a reranker is configured; False: keep the fused order this once
    rerank: bool | None = None
    #: True: expired memories too (memlane.engine.expiry)
    show_expired: bool = False
    #: what relative dates in the query ("last week") count back from: ``YYYY-MM-DD``, ISO 8601
    #: or Unix seconds (default: the scope's latest memory)
    reference_date: Any = None
    #: False: the dense signal alone (mem0's search without ``keyword_search``); None/True: hybrid
    keyword_search: bool | None = None
    #: memories whose ``metadata.categories`` holds one of these
    categories: Sequence[str] | None = None


class Recall:
    """Searches one store, embedding queries with the engine's ``embed``. ``config.retrieval``
    is read at every search, so a change to it takes effect on the next one."""

    def __init__(self, store: MemoryStore, embed: Callable[[Sequence[str]], np.ndarray], config: MemlaneConfig,
                 foreground: Foreground, reranking: Reranking | None = None) -> None:
        self.store = store
        self.reranking = reranking
        self.config = config
        self.foreground = foreground
        self._queries = QueryBatcher(embed)
        self._latest: dict[str, tuple[float, _dt.datetime | None]] = {}  # scope key -> (read at, latest memory's time)

    def search_hits(self, request: SearchRequest, *, timings: dict[str, float] | None = None) -> list[SearchHit]:
        """The request checked, then searched as a recall in flight (``Memory.search_hits``)."""
        query, threshold = request.query, request.threshold
        if not isinstance(query, str) or not query.strip():
            raise ValidationError("query must be a non-empty string", param="query")
        check_encodable(query, "query")
        n = check_max_limit(resolve_limit(request.limit, request.top_k, 10), self.config.server.max_limit,
                            top_k=request.limit is None and request.top_k is not None)
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
            raise ValidationError(f"threshold must be a number, got {threshold!r}", param="threshold")
        scope, parsed = resolve_scope(request.user_id, request.agent_id, request.run_id, request.filters, required="search")
        check_flag(request.keyword_search, "keyword_search", optional=True)
        anchor = reference_time(request.reference_date)
        parsed = all_of(parsed, categories_filter(request.categories))
        with self.foreground.running():
            parsed = visible(self.store, scope, parsed, request.show_expired)
            return self._search_hits(request, n, threshold, scope, parsed, timings, anchor)

    def _search_hits(self, request: SearchRequest, n: int, threshold: float | None, scope: Scope, parsed: Filter | None,
                     timings: dict[str, float] | None, anchor: _dt.datetime | None = None) -> list[SearchHit]:
        query = request.query
        started = time.perf_counter()
        vector = self._queries.embed_one(query)  # concurrent searches share one model call
        embedded = time.perf_counter()
        settings = self.config.retrieval
        found = self.store.search(scope, parsed, vector, query, max(settings.candidates, n))
        if request.keyword_search is False:
            found.keyword = {}
        reach = self.reranking.window(n) if self.reranking is not None and request.rerank is not False else 0
        pool_size = max(3 * n, 30, reach)  # what a bonus can lift into the top n (or the reranker's window)
        ranked = fuse(found, settings, limit=pool_size)  # only ever read up to the pool (or n <= pool)
        period = period_in(query, anchor or (lambda: self._latest_time(scope))) if settings.time_bonus or settings.day_bonus else None
        records: dict[Any, MemoryRecord] = {}
        words = shipped_word_vectors() if settings.alignment_weight else None
        asks_name = bool(settings.name_bonus) and asks_for_name(query)
        role = asked_role(query) if settings.role_bonus else None
        stance = asked_stance(query) if settings.stance_bonus else None
        if words is not None or period is not None or role is not None or asks_name or stance is not None \
                or (settings.speaker_bonus and may_name_someone(query)):
            pool = ranked[:pool_size]
            records = self.store.fetch([r.key for r in pool])
            aligned = None
            present = [r.key for r in pool if r.key in records]
            texts = [records[k].memory for k in present]
            if words is not None:
                aligned = dict(zip(present, alignment(query, texts, words)))
            named = naming(query, present, texts, (scope.user_id, scope.agent_id, scope.run_id)) if asks_name else None
            agreeing = {k for k, t in zip(present, texts) if stance in stances_in(t)} if stance is not None else None
            ranked = boosted(pool, records, query, period, settings, aligned, named, role, agreeing)
        rerank_s = None
        if self.reranking is not None and request.rerank is not False and ranked:
            reranking = time.perf_counter()
            missing = [r.key for r in ranked[: self.reranking.window(n)] if r.key not in records]
            records = {**records, **self.store.fetch(missing)} if missing else records
            ranked = self.reranking.apply(query, ranked, records, n)  # a failure keeps the fused order
            rerank_s = time.perf_counter() - reranking
        ranked = [r for r in ranked if threshold is None or r.score >= threshold][:n]
        if not records:
            records = self.store.fetch([r.key for r in ranked])
        if timings is not None:
            timings["embed_ms"] = (embedded - started) * 1000
            timings["search_ms"] = (time.perf_counter() - embedded - (rerank_s or 0.0)) * 1000
            if rerank_s is not None:
                timings["rerank_ms"] = rerank_s * 1000
        return [SearchHit(records[r.key], r.score, r.dense, r.keyword, r.hybrid) for r in ranked if r.key in records]

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
