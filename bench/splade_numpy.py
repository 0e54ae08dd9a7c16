"""A learned sparse encoder (SPLADE) run in numpy, without torch.

SPLADE maps a text to weights over the BERT vocabulary: ``max over tokens of log(1 + relu(MLM
logit))``, so a turn about "a painting for a local church" also weighs "religion" or "faith",
words it never says. A 2-layer, 128-wide BERT (SPLADE-tiny, 4.4M parameters) is small enough to
run here in plain numpy: the two layers are a handful of 128x128 matmuls; the MLM head is the
only large product (128 x 30,522 per token). Documents are encoded once (at write time, or
cached per text); a query needs its weights only on the terms the candidates have, so its head
product is computed for those columns alone (``query_weights``), a few thousand, not 30,522.

Weights: a folder with ``model.safetensors`` (``BertForMaskedLM`` names, either ``weight/bias``
or ``gamma/beta`` LayerNorm names), ``config.json`` and ``tokenizer.json``. None ships with
memlane: this is a bench tool (``meaning_rescore.py``, ``meaning_cost.py``, ``meaning_pools.py
--expand``); bench/README.md ("Recall by meaning") says what it gave, and with which model.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

SparseVector = dict[int, float]


def _gelu(x: np.ndarray) -> np.ndarray:
    # tanh approximation: within 1e-3 of erf-GELU, and no scipy in the hot path
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


class SpladeEncoder:
    """Encodes texts to SPLADE vectors; thread-safe (the tokenizer is used under a lock)."""

    def __init__(self, folder: str | Path, max_tokens: int = 128) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        if config.get("model_type") != "bert":
            raise ValueError(f"{folder}: a BERT masked-LM folder is needed, got {config.get('model_type')!r}")
        raw = load_file(str(folder / "model.safetensors"))
        w = {k.replace(".gamma", ".weight").replace(".beta", ".bias"): v.astype(np.float32) for k, v in raw.items()}
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.max_tokens = max_tokens
        self.w = w
        self.vocab_out = w["bert.embeddings.word_embeddings.weight"]  # tied decoder
        self.vocab_bias = w["cls.predictions.bias"]
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.no_padding()
        self._lock = threading.Lock()
        #: ids never given weight: [CLS], [SEP], [PAD], [UNK], [MASK]
        self.special = np.array(sorted({self.tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]")} - {None}))

    def hidden(self, text: str) -> np.ndarray:
        """The MLM head's transformed states of one text, (tokens, 128)."""
        with self._lock:
            ids = np.array(self.tokenizer.encode(text).ids)
        w, p = self.w, "bert.encoder.layer."
        x = w["bert.embeddings.word_embeddings.weight"][ids] + w["bert.embeddings.position_embeddings.weight"][: len(ids)] \
            + w["bert.embeddings.token_type_embeddings.weight"][0]
        x = _layer_norm(x, w["bert.embeddings.LayerNorm.weight"], w["bert.embeddings.LayerNorm.bias"], self.eps)
        n, d = x.shape
        hd = d // self.heads
        for i in range(self.layers):
            a = f"{p}{i}.attention."
            q = (x @ w[a + "self.query.weight"].T + w[a + "self.query.bias"]).reshape(n, self.heads, hd).transpose(1, 0, 2)
            k = (x @ w[a + "self.key.weight"].T + w[a + "self.key.bias"]).reshape(n, self.heads, hd).transpose(1, 0, 2)
            v = (x @ w[a + "self.value.weight"].T + w[a + "self.value.bias"]).reshape(n, self.heads, hd).transpose(1, 0, 2)
            s = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ v).transpose(1, 0, 2).reshape(n, d)
            x = _layer_norm(x + ctx @ w[a + "output.dense.weight"].T + w[a + "output.dense.bias"],
                            w[a + "output.LayerNorm.weight"], w[a + "output.LayerNorm.bias"], self.eps)
            f = f"{p}{i}."
            inner = _gelu(x @ w[f + "intermediate.dense.weight"].T + w[f + "intermediate.dense.bias"])
            x = _layer_norm(x + inner @ w[f + "output.dense.weight"].T + w[f + "output.dense.bias"],
                            w[f + "output.LayerNorm.weight"], w[f + "output.LayerNorm.bias"], self.eps)
        t = _gelu(x @ w["cls.predictions.transform.dense.weight"].T + w["cls.predictions.transform.dense.bias"])
        return _layer_norm(t, w["cls.predictions.transform.LayerNorm.weight"], w["cls.predictions.transform.LayerNorm.bias"], self.eps)

    def encode(self, text: str, top_k: int | None = 64) -> SparseVector:
        """The text's SPLADE vector, its ``top_k`` heaviest terms (all non-zero ones: None)."""
        logits = self.hidden(text) @ self.vocab_out.T + self.vocab_bias
        weights = np.log1p(np.maximum(logits, 0.0)).max(0)
        weights[self.special] = 0.0
        nz = np.flatnonzero(weights > 0)
        if top_k is not None and len(nz) > top_k:
            nz = nz[np.argpartition(-weights[nz], top_k)[:top_k]]
        return {int(i): float(weights[i]) for i in nz}

    def query_weights(self, text: str, terms: Sequence[int] | np.ndarray) -> np.ndarray:
        """The query's SPLADE weight on each of ``terms`` only (the candidates' terms)."""
        terms = np.asarray(terms, dtype=np.int64)
        if terms.size == 0:
            return np.zeros(0, dtype=np.float32)
        logits = self.hidden(text) @ self.vocab_out[terms].T + self.vocab_bias[terms]
        out = np.log1p(np.maximum(logits, 0.0)).max(0)
        out[np.isin(terms, self.special)] = 0.0
        return out

    def terms(self, vector: SparseVector, n: int = 12) -> list[str]:
        """The heaviest ``n`` terms as words, for reading what a vector says."""
        return [self.tokenizer.id_to_token(i) for i, _ in sorted(vector.items(), key=lambda kv: -kv[1])[:n]]
