"""The default embedder: a static model distilled from all-MiniLM-L6-v2, shipped with memlane.

Embedding is a tokenizer pass, a table lookup and a mean (model2vec): about 0.2 ms per query
against ~10 ms for MiniLM through torch, with no torch at all, so the default install is light
and recall stops being the proxy's bottleneck. Provenance: ``memlane/models/minilm-static/
provenance.json`` (teacher, licence, command, settings); rebuild with ``memlane models build``.
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
from memlane.models import STATIC_MODEL_DIR, provenance


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: a model2vec model folder; default: the one shipped with memlane
    path: str | None = None
    batch_size: int = 1024


_models: dict[str, Any] = {}
_lock = threading.Lock()
#: the Rust tokenizer under model2vec refuses concurrent use of one instance ("Already
#: borrowed", seen under load with the learner and chats embedding at once); an encode takes
#: ~0.05 ms, so one lock per process costs nothing measurable
_encode_lock = threading.Lock()


def load_model(folder: Path = STATIC_MODEL_DIR) -> Any:
    """The model2vec ``StaticModel`` in ``folder`` (default: the shipped one), loaded once per
    process: the embedder and the ranking's word vectors share it."""
    return _load(folder)


def _load(folder: Path) -> Any:
    with _lock:
        if str(folder) not in _models:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            try:
                from model2vec import StaticModel
            except ImportError:
                raise ConfigError("the static embedder needs the model2vec package: pip install model2vec", param="embedder") from None
            _models[str(folder)] = StaticModel.from_pretrained(str(folder), force_download=False)
        return _models[str(folder)]


class StaticEmbedder:
    def __init__(self, options: dict[str, Any] | None = None, **_: Any) -> None:
        self.options = validate_section(Options, options or {}, "embedder.config")
        self.folder = Path(self.options.path).expanduser() if self.options.path else STATIC_MODEL_DIR
        record = provenance(self.folder)
        if record is None:
            hint = ("the shipped model is missing from this install: reinstall memlane, or make it with "
                    "`memlane models build` (needs 'memlane[build]')") if not self.options.path else "give a folder made by model2vec's save_pretrained"
            raise ConfigError(f"no static model in {self.folder}: {hint}", param="embedder.config.path")
        self.model_id = str(record.get("name") or f"model2vec:{self.folder.name}")
        self.dims = int(record.get("pca_dims") or 0) or int(self._model().dim)

    def _model(self) -> Any:
        return _load(self.folder)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        model = self._model()
        try:
            with _encode_lock:
                vectors = model.encode(list(texts), batch_size=self.options.batch_size, use_multiprocessing=False)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise EmbedderError(f"the static embedder failed: {exc}") from exc
        return normalize(np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1))
