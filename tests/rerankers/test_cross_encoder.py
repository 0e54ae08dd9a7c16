"""The ``cross_encoder`` reranker with a real sentence-transformers CrossEncoder: a tiny BERT,
randomly initialised and saved with a tokenizer written here, so nothing is downloaded
(HF_HUB_OFFLINE=1). Its judgement is arbitrary; what the test checks is that a search returns
exactly the order and relevances the model gives, where they differ from the fused order."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from memlane import ConfigError, Memory

pytest.importorskip("sentence_transformers")

MEMORIES = ["I am allergic to cheese", "I live in San Francisco", "My favourite cuisine is Indian"]
QUESTION = "Which foods must I avoid?"
WORDS = "i am allergic to cheese live in san francisco my favourite cuisine is indian which foods must avoid ?".split()


def tiny_cross_encoder(folder: Path, seed: int) -> Path:
    """A one-layer BERT cross-encoder with random weights (``seed``) and its own tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS))]) + "\n")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=64, num_labels=1, initializer_range=0.5)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def judged(folder: Path) -> list[tuple[str, float]]:
    """The memories in the model's own order, with its relevances."""
    import torch
    from sentence_transformers import CrossEncoder

    scores = CrossEncoder(str(folder), device="cpu").predict([(QUESTION, m) for m in MEMORIES], activation_fn=torch.nn.Sigmoid())
    return sorted(zip(MEMORIES, (float(s) for s in scores)), key=lambda pair: -pair[1])


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_local_cross_encoder_orders_the_search(tmp_path: Path, make_memory: Callable[..., Memory]) -> None:
    plain = make_memory()
    plain.add(MEMORIES, user_id="alice", infer=False)
    fused = [h["memory"] for h in plain.search(QUESTION, user_id="alice")["results"]]
    # a seed whose arbitrary judgement disagrees with the fused order, so following it shows
    for seed in range(20):
        model = tiny_cross_encoder(tmp_path / f"cross-encoder-{seed}", seed)
        expected = judged(model)
        if [m for m, _ in expected] != fused:
            break
    assert [m for m, _ in expected] != fused

    memory = make_memory(reranker={"provider": "cross_encoder", "config": {"model": str(model), "batch_size": 2}})  # the same store
    memory.warm_up()  # the server does it at start-up: the model loads before the first search
    hits = memory.search(QUESTION, user_id="alice")["results"]

    assert [h["memory"] for h in hits] == [m for m, _ in expected]
    assert [h["score"] for h in hits] == pytest.approx([s for _, s in expected], abs=1e-5)
    assert all(0.0 <= h["score"] <= 1.0 for h in hits) and memory.rerank_stats()["reranked"] == 1


def test_a_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    config = {"vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "m.db")}},
              "reranker": {"provider": "cross_encoder", "config": {"model": "cross-encoder/ms-marco-MiniLM-L6-v2"}}}
    with pytest.raises(ConfigError, match="is not a model folder.*never downloads"):
        Memory(config)
