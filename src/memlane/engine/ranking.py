"""Fusing the dense and keyword signals into one ranked, scored list.

Shared by every store so that results do not depend on the backend. Measured on LoCoMo
(bench/README.md): a weighted sum of normalised scores beats reciprocal rank fusion once the
keyword index is strong.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass
from typing import Collection, Hashable, Mapping

from memlane.config import RetrievalConfig
from memlane.query.intent import Role
from memlane.query.keywords import STOPWORDS
from memlane.query.when import Period, parse_time
from memlane.records import MemoryRecord
from memlane.stores.base import Candidates

_CAPITALISED = re.compile(r"\b[A-Z][\w'-]+")


@dataclass(frozen=True)
class Ranked:
    key: Hashable
    score: float
    dense: float | None
    keyword: float | None
    #: the fused score, once a reranker's relevance replaced it as ``score`` (engine/reranking.py)
    hybrid: float | None = None


def fuse(found: Candidates, settings: RetrievalConfig, limit: int | None = None) -> list[Ranked]:
    """Score every candidate and sort, best first; ``limit``: only the best that many (the
    same first ones; a search reads only a prefix, and building the rest cost it ~0.2 ms).

    ``weighted``: ``(1-w) * max(cosine, 0) + w * bm25 / max_bm25``. The dense part is absolute,
    so ``threshold`` keeps a stable meaning; the keyword part is scaled by the best keyword
    match of this query (BM25 has no absolute scale). ``rrf``: ``sum 1 / (k + rank)``.
    """
    keys = found.dense.keys() | found.keyword.keys()
    if settings.fusion == "rrf":
        scores: dict[Hashable, float] = dict.fromkeys(keys, 0.0)
        for signal in (found.dense, found.keyword):
            for rank, key in enumerate(sorted(signal, key=signal.__getitem__, reverse=True), start=1):
                scores[key] += 1.0 / (settings.rrf_k + rank)
    else:
        w = settings.keyword_weight
        best = max(found.keyword.values(), default=0.0)
        dense_of, keyword_of = found.dense.get, found.keyword.get
        scores = {key: (1.0 - w) * max(dense_of(key) or 0.0, 0.0) + w * (keyword_of(key, 0.0) / best if best > 0 else 0.0)
                  for key in keys}
    def order(key: Hashable) -> tuple[float, str]:
        return -scores[key], str(key)

    best_keys = sorted(scores, key=order) if limit is None or limit >= len(scores) else heapq.nsmallest(limit, scores, key=order)
    dense, keyword = found.dense, found.keyword
    return [Ranked(key, scores[key], dense.get(key), keyword.get(key)) for key in best_keys]


def may_name_someone(query: str) -> bool:
    """Whether ``query`` has a capitalised word that is not a stop word (a name, perhaps):
    only then is the speaker bonus worth reading the candidates' records for."""
    return any(word.lower() not in STOPWORDS for word in _CAPITALISED.findall(query))


def boosted(ranked: list[Ranked], records: Mapping[Hashable, MemoryRecord], query: str, period: Period | None,
            settings: RetrievalConfig, aligned: Mapping[Hashable, float] | None = None,
            named: Collection[Hashable] | None = None, role: Role | None = None,
            agreeing: Collection[Hashable] | None = None) -> list[Ranked]:
    """Re-score candidates with what their records say, best first.

    Speaker: a memory said by someone the question names (its ``actor_id``, the message's
    ``name`` when it was added) gains ``speaker_bonus``; "what did Caroline paint" is about
    Caroline's own turns more than about turns that mention her. Measured on LoCoMo dev:
    recall@10 0.740 -> 0.775 at 0.2. Time: a memory from the period the question names ("in May
    2023", "last summer") gains ``time_bonus``, and ``day_bonus`` more when that period is one
    day ("on May 4th"). Role: a memory spoken in the role the question asks about
    (memlane.query.intent: the assistant's replies for "what did you recommend?", the user's
    turns for "what did I watch?"; a learnt fact, which has no role, counts as the user's) gains
    ``role_bonus``; ``role`` is the question's (``asked_role``), read once by the caller. Name: a memory in ``named`` (it names what a question asking for a name
    wants, engine/naming.py) gains ``name_bonus``. Stance: a memory in ``agreeing`` (it states
    the aversion or liking the question asks about, memlane.query.stance) gains
    ``stance_bonus``. Alignment: ``alignment_weight`` x the
    memory's term alignment with the question (``aligned``, engine/alignment.py).
    """
    lowered = query.lower()
    out = []
    for r in ranked:
        record = records.get(r.key)
        bonus = settings.alignment_weight * aligned.get(r.key, 0.0) if aligned else 0.0
        if named and r.key in named:
            bonus += settings.name_bonus
        if agreeing and r.key in agreeing:
            bonus += settings.stance_bonus
        if record is not None:
            actor = record.metadata.get("actor_id")
            if settings.speaker_bonus and isinstance(actor, str) and actor.strip() \
                    and re.search(rf"\b{re.escape(actor.strip().lower())}\b", lowered):
                bonus += settings.speaker_bonus
            created = parse_time(record.created_at)
            if period is not None and created is not None and period.contains(created):
                bonus += settings.time_bonus + (settings.day_bonus if period.one_day else 0.0)
            # a memory without a role is a learnt fact: the user's (the fact check drops the assistant's words)
            if role is not None and settings.role_bonus and (record.metadata.get("role") or "user") == role:
                bonus += settings.role_bonus
        out.append(Ranked(r.key, r.score + bonus, r.dense, r.keyword, r.hybrid) if bonus else r)  # (replace() costs 10 us)
    out.sort(key=lambda r: (-r.score, str(r.key)))
    return out
