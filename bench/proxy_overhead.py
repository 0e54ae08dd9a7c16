"""What memlane adds to a chat call: the same request sent straight to the scripted upstream and
through ``Memlane`` (recall from 10k memories in the scope, 100k in the store), interleaved.

The stored memories carry synthetic unit vectors (bulk-loaded through the store, bound to the
real MiniLM model id), so set-up takes seconds instead of embedding 100k texts; the query is
embedded for real by MiniLM on every call, as in production. Learning stays on: every call
queues its exchange in the outbox and the background learner runs extraction against the
scripted upstream, as it would in a real app.

    python bench/proxy_overhead.py [--requests 300]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import openai  # noqa: E402

from memlane import Memlane  # noqa: E402
from search_latency import load  # noqa: E402

QUESTIONS = [
    "Suggest dinner options in San Francisco.",
    "What should I cook tonight?",
    "Any ideas for a weekend trip?",
    "Which gym classes would suit me?",
    "Recommend a book for my flight.",
]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


@contextlib.contextmanager
def upstream_process() -> Iterator[str]:
    """The scripted upstream in its own process, as a real model server would be, so that its
    work does not share this process's GIL with memlane."""
    code = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from memlane.testing import ScriptedUpstream\n"
        "up = ScriptedUpstream().start()\n"
        "print(up.url, flush=True)\n"
        "time.sleep(3600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--no-learning", action="store_true", help="stop the background learner (to see its cost)")
    parser.add_argument("--torch-threads", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "proxy_overhead.md"))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="memlane-proxy-"))
    with upstream_process() as upstream_url:
        upstream = type("Upstream", (), {"url": upstream_url})
        config = {
            "vector_store": {"provider": "sqlite", "config": {"path": str(workdir / "proxy.db")}},
            "upstream": {"base_url": upstream.url, "api_key": "k", "max_retries": 0},
        }
        client = Memlane(config=config)
        if args.no_learning:
            client._backend.learner.stop()
        if args.torch_threads:
            import torch

            torch.set_num_threads(args.torch_threads)
        store = client.memory.store
        store.bind_embedder(client.memory.embedder.model_id, 384)
        t0 = time.perf_counter()
        load(store, ["alice"], 10_000)
        load(store, [f"user-{i}" for i in range(90)], 1_000)
        print(f"loaded 100k memories in {time.perf_counter() - t0:.0f}s", flush=True)
        direct = openai.OpenAI(base_url=upstream.url, api_key="k", max_retries=0)
        for i in range(5):  # warm up: model load, connections, the scope's vector cache
            messages = [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]
            direct.chat.completions.create(model="m", messages=messages)
            client.chat.completions.create(model="m", messages=messages, user_id="alice")
        direct_ms, through_ms, added_ms = [], [], []
        parts: dict[str, list[float]] = {"embed_ms": [], "search_ms": [], "inject_ms": []}
        for i in range(args.requests):
            # a distinct text per request: nothing may be served from a cache
            messages = [{"role": "user", "content": f"{QUESTIONS[i % len(QUESTIONS)]} (request {i})"}]
            t0 = time.perf_counter()
            direct.chat.completions.create(model="m", messages=messages)
            t1 = time.perf_counter()
            client.chat.completions.create(model="m", messages=messages, user_id="alice")
            t2 = time.perf_counter()
            direct_ms.append((t1 - t0) * 1000)
            through_ms.append((t2 - t1) * 1000)
            added_ms.append(through_ms[-1] - direct_ms[-1])
            for name in parts:
                parts[name].append(client.stats.last_recall_timings_ms.get(name, 0.0))
        client.flush(timeout=60)
        client.close()

    def row(name: str, values: list[float]) -> str:
        return f"| {name} | {statistics.median(values):.2f} | {pct(values, 0.95):.2f} | {pct(values, 0.99):.2f} |"

    lines = [
        f"{args.requests} requests, interleaved; 10k memories in the scope, 100k in the store; limit 10.",
        "",
        "| measure (ms) | p50 | p95 | p99 |",
        "|---|---|---|---|",
        row("direct to upstream", direct_ms),
        row("through Memlane", through_ms),
        row("**added by memlane** (paired difference)", added_ms),
        row("  of which query embedding (MiniLM)", parts["embed_ms"]),
        row("  of which store search + fusion + fetch", parts["search_ms"]),
        row("  of which injection", parts["inject_ms"]),
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
