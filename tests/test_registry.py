"""A third-party provider takes the same path as the built-in ones: one ``register`` call, then
its name in the config."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest

from memlane import ConfigError, Memory, registry


class LetterEmbedder:
    """A tiny deterministic embedder a plugin might ship: letter counts, normalised."""

    def __init__(self, options: dict[str, Any], **_: Any) -> None:
        self.model_id = "letters-" + hashlib.sha1(repr(sorted(options.items())).encode()).hexdigest()[:6]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 26), dtype=np.float32)
        for row, text in enumerate(texts):
            for char in text.lower():
                if "a" <= char <= "z":
                    out[row, ord(char) - 97] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_a_registered_embedder_runs_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._registered["embedder"], "letters", LetterEmbedder)
    assert "letters" in registry.providers("embedder")
    config = {"vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "m.db")}}, "embedder": {"provider": "letters"}}
    with Memory(config) as memory:
        memory.add(["Likes jazz", "Is allergic to cheese"], user_id="alice", infer=False)
        assert memory.search("cheese allergy", user_id="alice", limit=1)["results"][0]["memory"] == "Is allergic to cheese"


def test_an_unknown_provider_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown embedder provider 'nope'.*sentence_transformers"):
        Memory({"embedder": {"provider": "nope"}})
