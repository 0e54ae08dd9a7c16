"""Tuning the static default embedder on the LoCoMo dev half: PCA size and storage precision.

For each setting, distil a static model from the bundled MiniLM (``memlane.models.build``),
load the dev turns with it, and measure evidence recall@10 dense-only and in the default hybrid,
plus one-query embedding time; MiniLM itself is the first row, measured in the same run.

    python bench/static_tuning.py     # ~5 min; needs 'memlane[build]'

Writes ``bench/results/static_tuning.md``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from locomo_retrieval import DEFAULT_DATA, load_locomo, run_variants  # noqa: E402

from memlane import Memory  # noqa: E402
from memlane.config import RetrievalConfig  # noqa: E402
from memlane.models.build import build_static_model  # noqa: E402

SETTINGS = [(64, "float16"), (128, "float16"), (256, "float16"), (256, "float32"), (384, "float16")]


def embed_ms(memory: Memory) -> float:
    memory.embedder.embed(["warm up"])
    times = []
    for i in range(200):
        started = time.perf_counter()
        memory.embedder.embed([f"Suggest dinner options in San Francisco {i}"])
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(embedder: dict[str, Any], samples: list[dict[str, Any]], work: Path) -> dict[str, Any]:
    memory = Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(work / f"{time.time_ns()}.db")}}, "embedder": embedder})
    questions, _, _, load_s = load_locomo(memory, samples)
    rows = dict(run_variants(memory, questions, [("dense", RetrievalConfig(keyword_weight=0.0)), ("hybrid", RetrievalConfig())], (10,)))
    out = {"dense": rows["dense"]["all@10"], "hybrid": rows["hybrid"]["all@10"], "multi": rows["hybrid"]["c1@10"],
           "temporal": rows["hybrid"]["c2@10"], "embed_ms": embed_ms(memory), "load_s": load_s, "model": memory.embedder.model_id}
    memory.close()
    return out


def main() -> None:
    samples = json.loads(Path(DEFAULT_DATA).read_text())
    work = Path(tempfile.mkdtemp(prefix="memlane-static-tuning-"))
    rows = [("all-MiniLM-L6-v2 (torch), the teacher", measure({"provider": "sentence_transformers"}, samples, work), None)]
    for pca, dtype in SETTINGS:
        folder = work / f"static-{pca}-{dtype}"
        record = build_static_model(folder, pca_dims=pca, dtype=dtype)
        size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
        rows.append((f"static, PCA {pca}, {dtype}", measure({"provider": "model2vec", "config": {"path": str(folder)}}, samples, work), size))
        print(rows[-1], record["build_seconds"], flush=True)
    base = rows[0][1]
    lines = ["LoCoMo dev half, evidence recall@10 (categories 1-4); hybrid = the default weighted 0.5/0.5 fusion with "
             "BM25 over neighbour turns; embed = one query, p50 of 200, this process. Ratios against MiniLM in the same run.",
             "", "| embedder | size MB | dense@10 | hybrid@10 | multi-hop@10 | temporal@10 | embed ms | embed vs MiniLM | load 2,760 turns s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r, size in rows:
        lines.append(f"| {name} | {'-' if size is None else f'{size:.1f}'} | {r['dense']:.3f} | {r['hybrid']:.3f} | {r['multi']:.3f} | "
                     f"{r['temporal']:.3f} | {r['embed_ms']:.3f} | {r['embed_ms'] / base['embed_ms']:.3f}x | {r['load_s']:.1f} |")
    out = ROOT / "bench" / "results" / "static_tuning.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
