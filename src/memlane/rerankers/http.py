"""A reranker server over HTTP: the ``/rerank`` protocol most of them speak, and TEI's own.

``protocol: rerank`` (default) is Cohere's shape, which Jina, vLLM, llama.cpp's server and
Infinity serve too::

    POST {base_url}/rerank   {"model", "query", "documents": [...], "top_n"}
    -> {"results": [{"index", "relevance_score"}, ...]}

``protocol: tei`` is text-embeddings-inference's native route (TEI has no Cohere-shaped one)::

    POST {base_url}/rerank   {"query", "texts": [...]}   -> [{"index", "score"}, ...]

``base_url`` is the API root, as an OpenAI ``base_url`` is: ``http://localhost:8000/v1`` for
vLLM and llama.cpp, ``https://api.jina.ai/v1``, ``https://api.cohere.com/v2``,
``http://localhost:7997`` for Infinity, ``http://localhost:8080`` for TEI. A ``base_url`` that
already ends in ``/rerank`` is used as it is. Either answer shape is read whichever protocol was
sent; every document must get exactly one finite score, or the answer is refused as malformed.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Literal, Sequence

import httpx

from memlane.config import validate_section
from memlane.errors import ConfigError, RerankerError
from memlane.rerankers.base import RerankerOptions, ScoreScale, to_relevance

#: the environment variable read when the config names no key
API_KEY_ENV = "MEMLANE_RERANKER_API_KEY"


class Options(RerankerOptions):
    #: the server's API root (``http://localhost:8000/v1``), or its full ``.../rerank`` address
    base_url: str
    #: sent as ``Authorization: Bearer``; default ``MEMLANE_RERANKER_API_KEY``; none for a local server
    api_key: str | None = None
    #: the reranker model the server serves (vLLM, Jina and Cohere need it; TEI ignores it)
    model: str | None = None
    #: ``rerank``: Cohere's request and answer (Jina, vLLM, llama.cpp, Infinity); ``tei``: TEI's native ``/rerank``
    protocol: Literal["rerank", "tei"] = "rerank"
    #: how the server's scores map to [0, 1]: ``probability`` (Cohere, Jina, vLLM, Infinity,
    #: TEI by default), ``logit`` (llama.cpp's raw scores), ``auto``: a sigmoid only when a
    #: score falls outside [0, 1]
    scores: ScoreScale = "auto"
    #: seconds to open a connection (the whole call is bounded by ``timeout``)
    connect_timeout: float = 2.0


class HTTPReranker:
    def __init__(self, options: dict[str, Any] | None = None, **_: Any) -> None:
        self.options = validate_section(Options, options or {}, "reranker.config")
        base = self.options.base_url.rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ConfigError(f"reranker.config.base_url must be an http(s) address, got {self.options.base_url!r}",
                              param="reranker.config.base_url")
        self.url = base if base.endswith("/rerank") else base + "/rerank"
        self.top_n = self.options.top_n
        self.timeout = self.options.timeout
        key = self.options.api_key or os.environ.get(API_KEY_ENV)
        self._headers = {"authorization": f"Bearer {key}"} if key else {}
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                timeout = httpx.Timeout(self.timeout, connect=min(self.options.connect_timeout, self.timeout))
                self._client = httpx.Client(timeout=timeout, headers=self._headers)
            return self._client

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        if not documents:
            return []
        body: dict[str, Any]
        if self.options.protocol == "tei":
            body = {"query": query, "texts": list(documents)}
        else:
            body = {"query": query, "documents": list(documents), "top_n": len(documents)}
            if self.options.model:
                body["model"] = self.options.model
        try:
            response = self.client.post(self.url, json=body)
        except httpx.TimeoutException as exc:
            raise RerankerError(f"reranker {self.url} did not answer within {self.timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise RerankerError(f"reranker {self.url} could not be reached: {exc}") from exc
        if response.status_code != 200:
            raise RerankerError(f"reranker {self.url} answered {response.status_code}: {response.text[:200]}")
        try:
            answer = response.json()
        except ValueError as exc:
            raise RerankerError(f"reranker {self.url} answered a body that is not JSON") from exc
        return to_relevance(_scores(answer, len(documents), self.url), self.options.scores, source=f"reranker {self.url}")

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def _scores(answer: Any, count: int, url: str) -> list[Any]:
    """One raw score per document, by its index, from either answer shape."""
    results = answer.get("results") if isinstance(answer, dict) else answer
    if not isinstance(results, list):
        raise RerankerError(f"reranker {url} answered no results list")
    scores: list[Any] = [None] * count
    for item in results:
        index = item.get("index") if isinstance(item, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count or scores[index] is not None:
            raise RerankerError(f"reranker {url} answered a result with a missing, repeated or out-of-range index: {item!r}"[:300])
        score = item.get("relevance_score", item.get("score"))
        if score is None:
            raise RerankerError(f"reranker {url} answered a result without relevance_score or score: {item!r}"[:300])
        scores[index] = score
    if any(s is None for s in scores):
        raise RerankerError(f"reranker {url} scored {sum(s is not None for s in scores)} of {count} documents")
    return scores
