"""What term alignment costs a search: the same 10k real-text scope (LoCoMo turns recombined,
100k memories in the store, static embedder), the same questions (other LoCoMo turns), searched
with ``retrieval.alignment_weight`` 0 and 0.3 in alternation, in one process.

    python bench/alignment_cost.py [--queries 400] [--out bench/results/alignment_cost.md]
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "alignment_cost.md"))
    args = parser.parse_args()
    turns = locomo_turns()
    db = Path(tempfile.mkdtemp(prefix="memlane-align-")) / "store.db"
    load_s = build_store(db, {"provider": "model2vec"}, turns, 10_000, 100_000)
    questions = random.Random(3).sample(turns, args.queries)
    times: dict[float, list[float]] = {0.0: [], 0.3: []}
    with Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(db)}}}) as memory:
        for weight in times:  # warm both paths (scope cache, word vectors)
            memory.config.retrieval = RetrievalConfig(alignment_weight=weight)
            memory.search(questions[0], user_id="alice")
        for question in questions:
            for weight, spent in times.items():
                memory.config.retrieval = RetrievalConfig(alignment_weight=weight)
                started = time.perf_counter()
                memory.search(question, user_id="alice", limit=10)
                spent.append((time.perf_counter() - started) * 1000)
    table = latency_table(times, "alignment_weight", "off")
    Path(args.out).write_text(f"Search in a 10k-memory scope of a 100k SQLite store (LoCoMo turns recombined, static embedder; built in "
                              f"{load_s:.0f} s); {args.queries} LoCoMo turns as questions, each searched with alignment off and on "
                              f"in alternation, limit 10.\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
