"""Fusing the dense and keyword signals into one ranked, scored list.

Shared by every store so that results do not depend on the backend. Measured on LoCoMo
(bench/README.md): a weighted sum of normalised scores beats reciprocal rank fusion once the
keyword index is strong.
"""

from __future__ import annotations

from memlane.config import RetrievalConfig
from memlane.records import SearchHit
from memlane.stores.base import Candidates


def fuse(found: Candidates, settings: RetrievalConfig) -> list[SearchHit]:
    """Score every candidate and sort, best first.

    ``weighted``: ``(1-w) * max(cosine, 0) + w * bm25 / max_bm25``. The dense part is absolute,
    so ``threshold`` keeps a stable meaning; the keyword part is scaled by the best keyword
    match of this query (BM25 has no absolute scale). ``rrf``: ``sum 1 / (k + rank)``.
    """
    if not found.records:
        return []
    hits: list[SearchHit] = []
    if settings.fusion == "rrf":
        ranks: dict[str, float] = {}
        for signal in (found.dense, found.keyword):
            ordered = sorted(signal, key=lambda i: signal[i], reverse=True)
            for rank, memory_id in enumerate(ordered, start=1):
                ranks[memory_id] = ranks.get(memory_id, 0.0) + 1.0 / (settings.rrf_k + rank)
        for memory_id, score in ranks.items():
            hits.append(SearchHit(found.records[memory_id], score, found.dense.get(memory_id), found.keyword.get(memory_id)))
    else:
        w = settings.keyword_weight
        best = max(found.keyword.values(), default=0.0)
        for memory_id, record in found.records.items():
            dense = found.dense.get(memory_id)
            keyword = found.keyword.get(memory_id)
            d = max(dense or 0.0, 0.0)
            k = (keyword / best) if (keyword and best > 0) else 0.0
            hits.append(SearchHit(record, (1.0 - w) * d + w * k, dense, keyword))
    hits.sort(key=lambda h: (-h.score, h.record.id))
    return hits
