"""Capture each benchmark question's ranked candidate pool, as the default search ranks it, for
offline re-scoring experiments (``meaning_rescore.py``) and the LoCoMo misses listing.

A search hands its boosted pool (the fused top 30 with every bonus and term alignment applied,
exactly what a configured reranker would receive) to a capturing stand-in for the reranker,
which keeps it and changes nothing. So a re-score measured on these pools is what the same
re-score would give inside ``Recall``, without a second implementation of the ranking.

    python bench/meaning_pools.py [--out /tmp/meaning/pools.pkl]

Pools: LoCoMo dev in both storings (limit 10: a pool of 30), MemoryBank dev (limit 30: 90).
Each entry: question fields, and ``pool``: [(score, text, label, role, session)] best first,
plus ``deep``: the labels of the default search's first 100 hits (where a missed turn ranks).
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import tempfile
from pathlib import Path
from typing import Any, Hashable, Mapping

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import locomo_retrieval as locomo  # noqa: E402
import memorybank_retrieval as mb  # noqa: E402

from memlane import Memory  # noqa: E402
from memlane.config import RetrievalConfig  # noqa: E402
from memlane.engine.ranking import Ranked  # noqa: E402
from memlane.records import MemoryRecord  # noqa: E402


class Capture:
    """Stands in for ``Reranking``: keeps the pool it is handed, returns it unchanged."""

    def __init__(self, top_n: int) -> None:
        self.top_n = top_n
        self.last: list[tuple[Ranked, MemoryRecord | None]] = []

    def window(self, limit: int) -> int:
        return max(self.top_n, limit)

    def apply(self, query: str, ranked: list[Ranked], records: Mapping[Hashable, MemoryRecord], limit: int) -> list[Ranked]:
        self.last = [(r, records.get(r.key)) for r in ranked]
        return ranked


def pool_of(capture: Capture, label_key: str) -> list[tuple[float, str, str, str, str]]:
    out = []
    for r, record in capture.last:
        if record is None:
            continue
        md = record.metadata
        out.append((r.score, record.memory, str(md.get(label_key)), str(md.get("role") or "user"), str(md.get("session_date") or record.created_at)))
    return out


def capture_memory(path: Path, top_n: int) -> tuple[Memory, Capture]:
    memory = Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(path)}}, "embedder": {"provider": "model2vec"}})
    capture = Capture(top_n)
    memory._recall.reranking = capture  # noqa: SLF001 - a bench's probe, not an API
    memory.config.retrieval = RetrievalConfig()
    return memory, capture


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="/tmp/meaning/pools.pkl")
    args = parser.parse_args()
    pools: dict[str, list[dict[str, Any]]] = {}
    samples = json.loads(locomo.DEFAULT_DATA.read_text())
    for mode in ("named", "bare"):
        workdir = Path(tempfile.mkdtemp(prefix="memlane-pools-"))
        memory, capture = capture_memory(workdir / "l.db", 30)
        questions, _, _, _ = locomo.load_locomo(memory, samples, bare=mode == "bare")
        entries = []
        for q in questions:
            memory.search(q["question"], user_id=q["sample"], limit=10)
            pool = pool_of(capture, "dia_id")
            capture.top_n = 0
            deep = [h["metadata"].get("dia_id") for h in memory.search(q["question"], user_id=q["sample"], limit=100)["results"]]
            capture.top_n = 30
            entries.append({**q, "pool": pool, "deep": deep})
        pools[f"locomo-{mode}"] = entries
        memory.close()
        print(mode, len(entries), flush=True)
    history = json.loads((mb.DATA / "memorybank_dev.json").read_text())
    qs = mb.questions(json.loads((mb.DATA / "memorybank_dev_labels.json").read_text()))
    workdir = Path(tempfile.mkdtemp(prefix="memlane-pools-"))
    memory, capture = capture_memory(workdir / "m.db", 30)
    mb.load(memory, history)
    entries = []
    for i, q in enumerate(qs):
        memory.search(q["question"], user_id=q["user"], limit=mb.SEARCH_LIMIT)
        entries.append({**q, "index": i, "pool": pool_of(capture, "exchange")})
    pools["memorybank"] = entries
    memory.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "wb") as f:
        pickle.dump(pools, f)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
