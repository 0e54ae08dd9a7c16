"""The embedder contract: batches of text in, L2-normalised float32 vectors out.

An embedder that holds something to let go (an HTTP client's kept-alive connections) also has
``close()``; it is optional (not part of the ``Embedder`` protocol, so a custom embedder without
one still is an embedder), and ``Memory.close`` calls it when there is one."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    #: Identifies the model in the store, so a store is never searched with another model.
    model_id: str
    dims: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an ``(len(texts), dims)`` float32 array of unit-length rows."""
        ...


def normalize(matrix: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float32)
    if m.ndim == 1:
        m = m[None, :]
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return m / norms
