"""A local sentence-transformers ``CrossEncoder``: a model folder on disk scores each (query,
memory) pair. Nothing is downloaded (the hub is forced offline, as for the embedder) and no
cross-encoder ships with memlane: point ``model`` at a folder you have (``CrossEncoder(...)
.save_pretrained(path)`` on a machine that can download, e.g. cross-encoder/ms-marco-MiniLM-L6-v2).

The model needs torch and sentence-transformers (``pip install memlane[minilm]``). It loads once
per process and folder, on first use or at ``warm_up`` (the server warms it at start-up), and
scores with a sigmoid over its single output, so relevances are in [0, 1] whatever activation
the folder's config names.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Sequence

from pydantic import Field

from memlane.config import validate_section
from memlane.embedders.sentence_transformers import hub_offline
from memlane.errors import ConfigError, RerankerError
from memlane.rerankers.base import RerankerOptions

_models: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


class Options(RerankerOptions):
    #: the CrossEncoder model folder (``config.json``, weights, tokenizer)
    model: str
    #: (query, memory) pairs scored per forward pass
    batch_size: int = Field(default=32, ge=1)
    #: torch device (``cpu``; ``cuda`` where torch has one)
    device: str = "cpu"
    #: tokens per (query, memory) pair; longer pairs are cut
    max_length: int = Field(default=256, ge=8)
    #: torch intra-op threads for this process (1, as for the embedder: a search between HTTP
    #: calls is faster on one); None keeps torch's default
    threads: int | None = 1
    #: the first search pays the model's load (seconds): this much more than ``timeout``, once
    load_timeout: float = Field(default=60.0, gt=0)


def _load(path: str, device: str, max_length: int, threads: int | None) -> Any:
    key = (path, device)
    with _lock:
        if key not in _models:
            hub_offline()
            try:
                from sentence_transformers import CrossEncoder
            except ImportError:
                raise ConfigError("reranker 'cross_encoder' needs torch and sentence-transformers: pip install 'memlane[minilm]'",
                                  param="reranker.provider") from None
            if threads:
                import torch

                torch.set_num_threads(threads)
            try:
                model = CrossEncoder(path, device=device, max_length=max_length)
            except Exception as exc:  # noqa: BLE001 - any loader error names the folder
                raise RerankerError(f"cannot load the cross-encoder from {path}: {exc}") from exc
            if model.num_labels != 1:
                raise ConfigError(f"the cross-encoder in {path} has {model.num_labels} outputs; a reranker has one (a relevance)",
                                  param="reranker.config.model")
            _models[key] = model
        return _models[key]


class CrossEncoderReranker:
    def __init__(self, options: dict[str, Any] | None = None, **_: Any) -> None:
        self.options = validate_section(Options, options or {}, "reranker.config")
        path = Path(self.options.model).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError(f"reranker.config.model {self.options.model!r} is not a model folder (no config.json there); "
                              "memlane never downloads models: save a CrossEncoder there first", param="reranker.config.model")
        self._path = str(path.resolve())
        self.top_n = self.options.top_n
        self._model: Any = None

    @property
    def timeout(self) -> float:
        """The search's wait: the model's load on top of it until it is loaded."""
        return self.options.timeout if self._model is not None else self.options.timeout + self.options.load_timeout

    def warm_up(self) -> None:
        self._loaded()

    def _loaded(self) -> Any:
        if self._model is None:
            self._model = _load(self._path, self.options.device, self.options.max_length, self.options.threads)
        return self._model

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        if not documents:
            return []
        model = self._loaded()
        import torch

        try:
            scores = model.predict([(query, d) for d in documents], batch_size=self.options.batch_size,
                                   activation_fn=torch.nn.Sigmoid(), show_progress_bar=False, convert_to_numpy=True)
        except Exception as exc:  # noqa: BLE001
            raise RerankerError(f"the cross-encoder failed: {exc}") from exc
        return [float(s) for s in scores]
