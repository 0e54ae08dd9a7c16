"""Fusing the dense and keyword signals into one ranked, scored list.

Shared by every store so that results do not depend on the backend. Measured on LoCoMo
(bench/README.md): a weighted sum of normalised scores beats reciprocal rank fusion once the
keyword index is strong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable

from memlane.config import RetrievalConfig
from memlane.stores.base import Candidates


@dataclass(frozen=True)
class Ranked:
    key: Hashable
    score: float
    dense: float | None
    keyword: float | None


def fuse(found: Candidates, settings: RetrievalConfig) -> list[Ranked]:
    """Score every candidate and sort, best first.

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
        scores = {}
        for key in keys:
            d = max(found.dense.get(key) or 0.0, 0.0)
            k = found.keyword.get(key, 0.0) / best if best > 0 else 0.0
            scores[key] = (1.0 - w) * d + w * k
    ranked = [Ranked(key, score, found.dense.get(key), found.keyword.get(key)) for key, score in scores.items()]
    ranked.sort(key=lambda r: (-r.score, str(r.key)))
    return ranked
