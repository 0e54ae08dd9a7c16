"""Recall when the question shares no word with the memory that answers it.

memlane's own small set (bench/data/paraphrase.json: allergies, pets, family, work, plans; three
scopes of eight memories): each memory stored with ``infer=False``, each question asked with
``search``; R@1 is the share of questions whose answer comes first. Rows: each embedder with the
default retrieval settings and dense only, plus the keyword signal alone as the floor (it can
only match by accident here: no content word is shared, the set's own test checks that).

    python bench/paraphrase_recall.py [--embedders static,onnx,minilm] [--out bench/results/paraphrase_recall.md]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memlane import Memory  # noqa: E402
from memlane.config import RetrievalConfig  # noqa: E402

DATA = ROOT / "bench" / "data" / "paraphrase.json"
EMBEDDERS = {"static": ("model2vec", "static (shipped)"), "onnx": ("onnx", "MiniLM int8 ONNX"),
             "minilm": ("sentence_transformers", "MiniLM torch")}


def load(memory: Memory, data: dict[str, Any]) -> None:
    for scope in data["scopes"]:
        for text in scope["memories"]:
            memory.add(text, user_id=scope["user_id"], infer=False)


def recall_at_1(memory: Memory, data: dict[str, Any]) -> tuple[float, float, list[str]]:
    hits, times, misses = 0, [], []
    total = 0
    for scope in data["scopes"]:
        for q in scope["questions"]:
            started = time.perf_counter()
            found = memory.search(q["q"], user_id=scope["user_id"], limit=3)["results"]
            times.append((time.perf_counter() - started) * 1000)
            total += 1
            if found and found[0]["memory"] == scope["memories"][q["answer"]]:
                hits += 1
            else:
                misses.append(f"{q['q']} -> {found[0]['memory'] if found else None}")
    return hits / total, statistics.median(times), misses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--embedders", default="static,onnx,minilm")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "paraphrase_recall.md"))
    args = parser.parse_args()
    data = json.loads(DATA.read_text())
    rows = []
    for name in args.embedders.split(","):
        provider, label = EMBEDDERS[name]
        memory = Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(Path(tempfile.mkdtemp()) / "p.db")}},
                         "embedder": {"provider": provider}})
        try:
            load(memory, data)
            variants = [("default", RetrievalConfig()), ("default without term alignment", RetrievalConfig(alignment_weight=0)),
                        ("dense only", RetrievalConfig(keyword_weight=0.0, alignment_weight=0, stance_bonus=0))]
            if not rows:
                variants.append(("keyword only (floor)", RetrievalConfig(keyword_weight=1.0, alignment_weight=0, stance_bonus=0)))
            for variant, settings in variants:
                memory.config.retrieval = settings
                r1, p50, misses = recall_at_1(memory, data)
                rows.append((f"{label}: {variant}", r1, p50, misses))
                print(rows[-1][:3], flush=True)
        finally:
            memory.close()
    total = sum(len(s["questions"]) for s in data["scopes"])
    lines = [f"Paraphrase set: {total} questions over {len(data['scopes'])} scopes of 8 memories; R@1 = the answer is first.\n",
             "| method | R@1 | search p50 ms | misses |", "|---|---|---|---|"]
    for name, r1, p50, misses in rows:
        lines.append(f"| {name} | {r1:.3f} | {p50:.1f} | {'; '.join(misses[:4])}{' ...' if len(misses) > 4 else ''} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
