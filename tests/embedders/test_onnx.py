"""MiniLM as int8 ONNX: the transformer's sense of meaning without torch, on every store."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from memlane import Memory
from memlane.embedders.onnx import OnnxEmbedder
from memlane.errors import ConfigError
from memlane.query.keywords import STOPWORDS

PARAPHRASE = Path(__file__).resolve().parents[2] / "bench" / "data" / "paraphrase.json"

NO_TORCH = """
import json, sys
from memlane.embedders.onnx import OnnxEmbedder
e = OnnxEmbedder()
v = e.embed(["I am allergic to cheese", "I live in San Francisco", "what can't I eat?"])
print(json.dumps({"torch": "torch" in sys.modules, "dims": e.dims, "model": e.model_id,
                  "allergy": float(v[2] @ v[0]), "city": float(v[2] @ v[1])}))
"""


def test_it_runs_without_torch_and_reads_meaning() -> None:
    done = subprocess.run([sys.executable, "-c", NO_TORCH], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["torch"] is False and out["dims"] == 384 and out["model"] == "all-MiniLM-L6-v2-onnx-int8"
    assert out["allergy"] > out["city"]


def test_its_vectors_are_minilms_own() -> None:
    """Same vectors as all-MiniLM-L6-v2 through torch (int8 weights: within a rounding error)."""
    from memlane.embedders.sentence_transformers import SentenceTransformerEmbedder

    texts = ["I am allergic to cheese", "Which foods must I avoid?", "", "a " * 400]  # empty and over-long too
    onnx, torch = OnnxEmbedder().embed(texts), SentenceTransformerEmbedder().embed(texts)
    assert onnx.shape == (4, 384) and np.allclose(np.linalg.norm(onnx, axis=1), 1, atol=1e-5)
    assert (onnx * torch).sum(axis=1)[[0, 1, 3]].min() > 0.99


def test_a_wrong_model_or_tokenizer_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no ONNX model") as e:
        OnnxEmbedder({"path": str(tmp_path / "missing.onnx")})
    assert e.value.param == "embedder.config.path"
    with pytest.raises(ConfigError, match="tokenizer") as e:
        OnnxEmbedder({"tokenizer": str(tmp_path / "tokenizer.json")})
    assert e.value.param == "embedder.config.tokenizer"


def content_words(text: str) -> set[str]:
    return {w[:5] for w in re.findall(r"[a-z']+", text.lower()) if w not in STOPWORDS and len(w) > 2}


def test_the_paraphrase_set_shares_no_content_word_between_question_and_answer() -> None:
    data = json.loads(PARAPHRASE.read_text())
    for scope in data["scopes"]:
        for q in scope["questions"]:
            shared = content_words(q["q"]) & content_words(scope["memories"][q["answer"]])
            assert not shared, (q["q"], shared)


def test_with_it_the_allergy_answers_what_cant_i_eat_on_every_store(make_memory: Callable[..., Memory]) -> None:
    # term alignment scores words by the static model's word vectors: it pulls "foods" to "cuisine"
    # (bench/paraphrase_recall.py: onnx R@1 0.92 with it, 0.96 without, static 0.88 with it)
    memory = make_memory(embedder={"provider": "onnx"}, retrieval={"alignment_weight": 0})
    memory.add(["I am allergic to cheese", "I live in San Francisco", "My favourite cuisine is Indian"], user_id="ana", infer=False)
    for question in ("Which foods must I avoid?", "what can't I eat?"):
        top: dict[str, Any] = memory.search(question, user_id="ana", limit=3)["results"][0]
        assert top["memory"] == "I am allergic to cheese", (question, top)
