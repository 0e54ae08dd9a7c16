"""The reranker contract: a query and the texts of a search's top candidates in, one relevance
per text out, each in [0, 1] (1: answers the query), in the order the texts were given.

A reranker only scores; the engine (memlane.engine.reranking) picks the candidates, re-orders
them, bounds the wait with ``timeout`` and keeps the fused order when a reranker raises. A
provider raises ``RerankerError`` for anything that went wrong (a refused call, a malformed
answer): never a partial or a guessed list of scores.
"""

from __future__ import annotations

import math
from typing import Literal, Protocol, Sequence, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from memlane.errors import RerankerError


@runtime_checkable
class Reranker(Protocol):
    #: how many fused candidates a search sends (at least its limit)
    top_n: int
    #: seconds a search waits for the scores before it keeps the fused order
    timeout: float

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        """The relevance of each of ``documents`` to ``query``, in [0, 1], in their order."""
        ...


class RerankerOptions(BaseModel):
    """What every reranker's config takes; providers subclass it to add their own keys."""

    model_config = ConfigDict(extra="forbid")
    #: fused candidates sent to the reranker; a search with a larger limit sends its limit
    top_n: int = Field(default=20, ge=1, le=1000)
    #: seconds a search waits for the reranker; after that it answers in the fused order
    timeout: float = Field(default=5.0, gt=0)


#: how a provider's raw scores become relevances in [0, 1]
ScoreScale = Literal["auto", "probability", "logit"]


def to_relevance(scores: Sequence[float], scale: ScoreScale, *, source: str) -> list[float]:
    """Raw scores as relevances in [0, 1]. ``probability``: already there (clamped);
    ``logit``: a logistic sigmoid (llama.cpp and TEI with ``raw_scores`` answer logits);
    ``auto``: the sigmoid only when some score falls outside [0, 1] (a list of logits that all
    happen to lie inside it is then read as probabilities: name the scale when you know it)."""
    values = []
    for score in scores:
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise RerankerError(f"{source} answered a score that is not a finite number: {score!r}")
        values.append(float(score))
    logits = scale == "logit" or (scale == "auto" and any(v < 0.0 or v > 1.0 for v in values))
    if logits:
        return [_sigmoid(v) for v in values]
    return [min(max(v, 0.0), 1.0) for v in values]


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)
