"""What the role, day and name bonuses cost a search: the same 10k real-text scope (LoCoMo turns
recombined, 100k memories in the store, static embedder) as ``alignment_cost.py``, asked real
questions that trigger them (MemoryBank's probing questions: "I"/"you", "on May 4th", "what
was its name?"; and LoCoMo's dev questions), with the previous default (the three off) and the
default in alternation, in one process.

    python bench/ranking_cost.py [--queries 400] [--store 100000] [--out bench/results/ranking_cost.md]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from memlane import Memory  # noqa: E402
from memlane.config import RetrievalConfig  # noqa: E402
from proxy_overhead import latency_table  # noqa: E402
from server_throughput import build_store  # noqa: E402
from soak import locomo_turns  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def questions(n: int) -> list[str]:
    bank = [q["question"] for q in json.loads((DATA / "memorybank" / "memorybank_dev_labels.json").read_text())]
    locomo = [qa["question"] for sample in json.loads((DATA / "locomo" / "locomo_dev.json").read_text()) for qa in sample["qa"]]
    rng = random.Random(3)
    picked = bank + rng.sample(locomo, max(0, n - len(bank)))
    rng.shuffle(picked)
    return picked[:n]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--store", type=int, default=100_000)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "ranking_cost.md"))
    args = parser.parse_args()
    db = Path(tempfile.mkdtemp(prefix="memlane-ranking-")) / "store.db"
    load_s = build_store(db, {"provider": "model2vec"}, locomo_turns(), 10_000, args.store)
    asked = questions(args.queries)
    settings = {"previous default (role, day, name off)": RetrievalConfig(role_bonus=0, day_bonus=0, name_bonus=0),
                "default (role 0.2, day 0.4, name 0.2)": RetrievalConfig()}
    times: dict[str, list[float]] = {name: [] for name in settings}
    with Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(db)}}}) as memory:
        for config in settings.values():  # warm both paths (scope cache, word vectors)
            memory.config.retrieval = config
            memory.search(asked[0], user_id="alice")
        for i, question in enumerate(asked):
            pairs = list(settings.items())
            for name, config in pairs if i % 2 == 0 else pairs[::-1]:  # neither always runs second (warmer caches)
                memory.config.retrieval = config
                started = time.perf_counter()
                memory.search(question, user_id="alice", limit=10)
                times[name].append((time.perf_counter() - started) * 1000)
    table = latency_table(times, "settings", "previous")
    Path(args.out).write_text(f"Search in a 10k-memory scope of a {args.store // 1000}k SQLite store (LoCoMo turns recombined, static embedder;"
                              f" built in {load_s:.0f} s); {len(asked)} questions (MemoryBank's and LoCoMo's), each searched with"
                              f" both settings in alternation (which goes first alternates too), limit 10.\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
