"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint."""

from __future__ import annotations

import threading
from typing import Any, Sequence

import numpy as np
from memlane.config import validate_section
from memlane.embedders.base import normalize
from memlane.errors import EmbedderError
from memlane.openai_compat import EndpointOptions, build_client


class Options(EndpointOptions):
    model: str = "text-embedding-3-small"
    embedding_dims: int | None = None
    batch_size: int = 256


class OpenAIEmbedder:
    def __init__(
        self,
        options: dict[str, Any] | None = None,
        *,
        fallback_base_url: str | None = None,
        fallback_api_key: str | None = None,
        **_: Any,
    ) -> None:
        self.options = validate_section(Options, options or {}, "embedder.config")
        self._fallback = (fallback_base_url, fallback_api_key)
        #: built now, so that a config without an endpoint fails at start-up; None after ``close``
        self._client: Any = build_client(self.options, self._fallback, where="embedder")
        self._lock = threading.Lock()
        self.model_id = f"openai/{self.options.model}"
        self.dims = self.options.embedding_dims or 0  # learnt from the first answer when unset

    @property
    def client(self) -> Any:
        """The SDK client (built again after ``close``: an engine used once more still embeds)."""
        with self._lock:
            if self._client is None:
                self._client = build_client(self.options, self._fallback, where="embedder")
            return self._client

    def close(self) -> None:
        """Close the client's kept-alive connections to the embedding server (``Memory.close``
        calls it: nothing else would, until the object is collected)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        rows: list[list[float]] = []
        extra = {"dimensions": self.options.embedding_dims} if self.options.embedding_dims else {}
        try:
            for start in range(0, len(texts), self.options.batch_size):
                batch = list(texts[start : start + self.options.batch_size])
                resp = self.client.embeddings.create(model=self.options.model, input=batch, **extra)
                ordered = sorted(resp.data, key=lambda d: d.index)
                if len(ordered) != len(batch):
                    raise EmbedderError(
                        f"embedding server returned {len(ordered)} vectors for {len(batch)} texts"
                    )
                rows.extend(d.embedding for d in ordered)
        except EmbedderError:
            raise
        except Exception as exc:  # noqa: BLE001 - openai errors, connection errors
            raise EmbedderError(f"embedding request failed: {exc}") from exc
        matrix = normalize(np.asarray(rows, dtype=np.float32))
        if not self.dims:
            self.dims = int(matrix.shape[1])
        elif matrix.shape[1] != self.dims:
            raise EmbedderError(f"embedding server returned {matrix.shape[1]} dims, expected {self.dims}")
        return matrix

