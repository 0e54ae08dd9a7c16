"""The OpenAI-compatible embedder, against the scripted server's /v1/embeddings over HTTP."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

from memlane import ConfigError, Memory
from memlane.embedders.openai import OpenAIEmbedder
from memlane.errors import EmbedderError
from memlane.testing import ScriptedUpstream


def test_embeds_in_batches_in_order(upstream: ScriptedUpstream) -> None:
    embedder = OpenAIEmbedder({"base_url": upstream.url, "api_key": "k", "batch_size": 2, "model": "emb-1"})
    vectors = embedder.embed(["a b", "c d", "a b"])
    assert vectors.shape == (3, 64) and np.allclose(vectors[0], vectors[2])
    assert [len(r.json["input"]) for r in upstream.requests] == [2, 1]
    assert upstream.requests[0].json["model"] == "emb-1"
    assert embedder.model_id == "openai/emb-1" and embedder.dims == 64


def test_dimensions_are_requested_when_configured(upstream: ScriptedUpstream) -> None:
    embedder = OpenAIEmbedder({"base_url": upstream.url, "api_key": "k", "embedding_dims": 32})
    assert embedder.embed(["x"]).shape == (1, 32)
    assert upstream.requests[-1].json["dimensions"] == 32


def test_endpoint_from_environment(upstream: ScriptedUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", upstream.url)
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    OpenAIEmbedder().embed(["x"])
    assert upstream.requests[-1].headers["authorization"] == "Bearer env-key"


def test_no_endpoint_names_the_fix() -> None:
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL"):
        OpenAIEmbedder()


def test_unreachable_server_is_an_embedder_error() -> None:
    embedder = OpenAIEmbedder({"base_url": "http://127.0.0.1:9/v1", "api_key": "k", "max_retries": 0, "timeout": 2})
    with pytest.raises(EmbedderError, match="embedding request failed"):
        embedder.embed(["x"])


def test_memory_runs_on_the_openai_embedder(make_memory: Callable[..., Memory], fast_embedder_config: dict[str, Any]) -> None:
    memory = make_memory(embedder=fast_embedder_config)
    memory.add(["Loves green tea", "Plays chess on Sundays"], user_id="alice", infer=False)
    assert memory.search("chess", user_id="alice", limit=1)["results"][0]["memory"] == "Plays chess on Sundays"
