"""Throughput and latency of ``memlane serve`` under load, against the upstream alone.

Three processes besides this one: the scripted upstream (answers instantly), ``memlane serve``
(embedded SQLite store with 10k memories in the scope), and a bounded async load generator
(httpx, keep-alive). For 1, 8 and 64 concurrent clients: req/s and p50/p95/p99 for
(a) straight to the upstream, (b) through memlane without a scope (plain proxy),
(c) through memlane with recall (``user_id``; learning on). Loopback only; each level runs a
fixed time.

    python bench/server_throughput.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from processes import start_serve, start_upstream, stop  # noqa: E402

LOADGEN = r'''
import asyncio, json, sys, time
url, seconds, clients, body = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
async def main():
    lat, errors = [], 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        end = time.perf_counter() + seconds
        async def worker(i):
            nonlocal errors
            n = 0
            while time.perf_counter() < end:
                b = dict(body); b["messages"] = [{"role": "user", "content": f"{body['messages'][0]['content']} ({i}-{n})"}]
                t = time.perf_counter()
                r = await client.post(url, json=b)
                lat.append(time.perf_counter() - t)
                errors += r.status_code != 200
                n += 1
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(clients)))
        wall = time.perf_counter() - t0
    print(json.dumps({"n": len(lat), "wall": wall, "errors": errors, "lat": lat}))
asyncio.run(main())
'''


def run_level(url: str, seconds: float, clients: int, body: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", LOADGEN, url, str(seconds), str(clients), json.dumps(body)],
                         capture_output=True, text=True, timeout=seconds + 120)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    data = json.loads(out.stdout)
    lat = sorted(data["lat"])

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] * 1000

    return {"rps": data["n"] / data["wall"], "p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99), "errors": data["errors"], "n": data["n"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--no-learning", action="store_true",
                        help="diagnosis: the memory LLM points at a closed port with a 1-hour backoff, so the learner idles")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "server_throughput.md"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="memlane-throughput-"))
    procs: list[subprocess.Popen] = []
    try:
        up, upstream_url = start_upstream()
        procs.append(up)

        # the store: 10k memories in alice's scope (synthetic vectors under the real model id)
        from memlane.embedders.sentence_transformers import SentenceTransformerEmbedder
        from memlane.stores.sqlite import SQLiteStore
        from search_latency import load

        db = work / "memlane.db"
        store = SQLiteStore({"path": str(db)})
        store.bind_embedder(SentenceTransformerEmbedder().model_id, 384)
        load(store, ["alice"], 10_000)
        store.close()
        config = work / "memlane.json"
        config.write_text(json.dumps({"vector_store": {"provider": "sqlite", "config": {"path": str(db)}},
                                      "upstream": {"base_url": upstream_url, "api_key": "k", "max_retries": 0},
                                      **({"llm": {"provider": "openai", "config": {"base_url": "http://127.0.0.1:9/v1", "max_retries": 0}},
                                          "outbox": {"retry_base_seconds": 3600}} if args.no_learning else {})}))
        serve, memlane_url = start_serve(config, work / "home")
        procs.append(serve)

        body = {"model": "m", "messages": [{"role": "user", "content": "Suggest dinner options in San Francisco."}]}
        modes = [
            ("direct to upstream", upstream_url + "/chat/completions", body),
            ("memlane, no scope (plain proxy)", memlane_url + "/v1/chat/completions", body),
            ("memlane, recall on (10k in scope)", memlane_url + "/v1/chat/completions", {**body, "user_id": "alice"}),
        ]
        for _, url, b in modes:  # warm up every path
            run_level(url, 1.0, 2, b)
        rows = []
        for clients in (1, 8, 64):
            for name, url, b in modes:
                r = run_level(url, args.seconds, clients, b)
                rows.append((clients, name, r))
                print(clients, name, {k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}, flush=True)
    finally:
        stop(procs)

    lines = [
        f"Each level runs {args.seconds:.0f} s; latencies are client-side (load generator in its own process).",
        "",
        "| clients | path | req/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for clients, name, r in rows:
        lines.append(f"| {clients} | {name} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p95']:.1f} | {r['p99']:.1f} | {r['errors']} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
