"""The memory LLM as a reranker: one JSON call scores every candidate of a search.

It speaks the LLM contract the engine already has (``complete_json``, memlane.llms.base), so any
OpenAI-compatible model that serves fact extraction serves this too. The prompt shows the
candidates under short integer ids (never memory ids) and asks for ``{"scores": [{"id": "0",
"score": 0.83}, ...]}`` with scores in [0, 1]. A candidate the model leaves out scores 0 (models
drop the irrelevant ones); an answer that is not that JSON object, or scores none of the
candidates, is refused (the search keeps the fused order). Unlike extraction there is no repair
call: a search cannot wait for two model calls.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

from pydantic import Field

from memlane.config import validate_section
from memlane.errors import ConfigError, MemlaneError, RerankerError
from memlane.llms.base import LLM
from memlane.rerankers.base import RerankerOptions

#: how the request's user message starts (tests' scripted models recognise the call by it)
PROMPT_PREFIX = "Score how well each memory answers the query."

SYSTEM_PROMPT = (
    "You rank a user's memories for a search. For each memory, give a relevance score from 0 to 1: 1 when it "
    "directly answers or is needed to answer the query, around 0.5 when it is related background, 0 when it is "
    "unrelated. Judge meaning, not shared words: 'what can't I eat?' is answered by an allergy. Answer with one "
    'JSON object and nothing else: {"scores": [{"id": "<memory id>", "score": <number>}, ...]}, one entry per memory.'
)


class Options(RerankerOptions):
    #: the model to ask; default the memory LLM's own (``llm.config.model``)
    model: str | None = None
    #: characters of each memory shown to the model (longer ones are cut)
    max_chars: int = Field(default=1000, ge=20)
    #: replaces memlane's system prompt (``memlane.rerankers.llm.SYSTEM_PROMPT``); it must ask for the same JSON answer
    prompt: str | None = None
    timeout: float = Field(default=10.0, gt=0)


def rerank_messages(query: str, documents: Sequence[str], *, max_chars: int, prompt: str | None = None) -> list[dict[str, Any]]:
    memories = [{"id": str(i), "text": text[:max_chars]} for i, text in enumerate(documents)]
    payload = json.dumps({"query": query, "memories": memories}, ensure_ascii=False)
    return [{"role": "system", "content": prompt or SYSTEM_PROMPT},
            {"role": "user", "content": f"{PROMPT_PREFIX}\n\n{payload}"}]


def parse_scores(text: str, count: int) -> list[float]:
    """One relevance per candidate from the model's answer (see the module docstring)."""
    try:
        answer = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise RerankerError(f"the LLM reranker answered text that is not JSON: {str(text)[:200]!r}") from exc
    entries = answer.get("scores") if isinstance(answer, dict) else None
    if not isinstance(entries, list):
        raise RerankerError(f"the LLM reranker's answer has no scores list: {str(text)[:200]!r}")
    scores: list[float | None] = [None] * count
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        key, score = entry.get("id"), entry.get("score")
        index = int(key) if isinstance(key, (str, int)) and not isinstance(key, bool) and str(key).strip().isdigit() else None
        if index is None or not 0 <= index < count or scores[index] is not None:
            continue
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            continue
        scores[index] = min(max(float(score), 0.0), 1.0)
    if all(s is None for s in scores):
        raise RerankerError(f"the LLM reranker scored none of the {count} memories: {str(text)[:200]!r}")
    return [0.0 if s is None else s for s in scores]


class LLMReranker:
    def __init__(self, options: dict[str, Any] | None = None, *, llm: LLM | None = None, **_: Any) -> None:
        self.options = validate_section(Options, options or {}, "reranker.config")
        if llm is None:
            raise ConfigError("reranker 'llm' needs the memory LLM (the engine passes it)", param="reranker.provider")
        self.llm = llm
        self.top_n = self.options.top_n
        self.timeout = self.options.timeout

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        if not documents:
            return []
        messages = rerank_messages(query, documents, max_chars=self.options.max_chars, prompt=self.options.prompt)
        try:
            text = self.llm.complete_json(messages, model=self.options.model)
        except MemlaneError as exc:
            raise RerankerError(f"the LLM reranker's call failed: {exc.message}") from exc
        return parse_scores(text, len(documents))
