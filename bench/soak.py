"""Soak: does ``memlane serve`` stay bounded in memory and file descriptors over a long run?

Three processes besides this one: the scripted upstream (``--facts``: every exchange teaches
one fact, so learning really extracts, reconciles and stores), ``memlane serve`` on the
embedded default (SQLite, the default embedder), and a load generator (8 keep-alive clients).
The traffic is real text: LoCoMo dev turns as chat messages for 40 users, mixed as an app
would send it: chats with recall (JSON and SSE), searches, lists, verbatim adds, gets and
history reads. Every 1,000 requests the server's RSS and open FDs are sampled.

    python bench/soak.py [--requests 20000] [--clients 8]

Writes ``bench/results/soak.md``: the samples, and RSS/FD growth after warm-up as ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from processes import start_serve, start_upstream, stop  # noqa: E402

LOADGEN = r'''
import asyncio, json, random, sys
import httpx
url, total, clients = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
turns = json.loads(open(sys.argv[4]).read())
rng = random.Random(7)
async def main():
    done = errors = 0
    ids = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        async def one(n):
            nonlocal errors
            user = f"user{n % 40}"
            text = turns[n % len(turns)]
            roll = rng.random()
            if roll < 0.55:
                r = await client.post("/v1/chat/completions", json={"model": "m", "user_id": user,
                                      "messages": [{"role": "user", "content": text}]})
            elif roll < 0.65:
                async with client.stream("POST", "/v1/chat/completions", json={"model": "m", "user_id": user, "stream": True,
                                         "messages": [{"role": "user", "content": text}]}) as r:
                    async for _ in r.aiter_bytes():
                        pass
            elif roll < 0.77:
                r = await client.post("/v1/memories/search", json={"query": text, "user_id": user, "limit": 10})
            elif roll < 0.85:
                r = await client.get("/v1/memories", params={"user_id": user, "limit": 50})
            elif roll < 0.93:
                r = await client.post("/v1/memories", json={"messages": text, "user_id": user, "infer": False})
                if r.status_code == 200 and r.json()["results"]:
                    ids.append(r.json()["results"][0]["id"])
            elif ids:
                memory_id = rng.choice(ids)
                r = await client.get(f"/v1/memories/{memory_id}/history" if roll < 0.97 else f"/v1/memories/{memory_id}")
            else:
                r = await client.get("/healthz")
            errors += r.status_code >= 500
        queue = asyncio.Queue()
        for n in range(total):
            queue.put_nowait(n)
        async def worker():
            nonlocal done
            while not queue.empty():
                await one(queue.get_nowait())
                done += 1
                if done % 1000 == 0:
                    print(json.dumps({"done": done, "errors": errors}), flush=True)
        await asyncio.gather(*(worker() for _ in range(clients)))
    print(json.dumps({"done": done, "errors": errors, "final": True}), flush=True)
asyncio.run(main())
'''


def locomo_turns() -> list[str]:
    data = json.loads((ROOT.parent / "shared" / "data" / "locomo" / "locomo_dev.json").read_text())
    turns = []
    for sample in data:
        conversation = sample["conversation"]
        for key, session in conversation.items():
            if key.startswith("session_") and isinstance(session, list):
                turns += [t["text"] for t in session if t.get("text")]
    return turns


def sample(pid: int) -> tuple[float, int]:
    """RSS in MiB and open file descriptors of a process."""
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS"))
    return rss / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=5_000, help="requests before the baseline sample")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "soak.md"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="memlane-soak-"))
    turns = locomo_turns()
    procs: list[subprocess.Popen] = []
    samples: list[tuple[int, float, int, float]] = []
    try:
        up, upstream_url = start_upstream("--facts")
        procs.append(up)
        config = work / "memlane.json"
        config.write_text(json.dumps({"vector_store": {"provider": "sqlite", "config": {"path": str(work / "memlane.db")}},
                                      "upstream": {"base_url": upstream_url, "api_key": "k"}}))
        serve, url = start_serve(config, work / "home")
        procs.append(serve)
        started = time.monotonic()
        rss, fds = sample(serve.pid)
        samples.append((0, rss, fds, 0.0))
        turns_file = work / "turns.json"
        turns_file.write_text(json.dumps(turns))
        load = subprocess.Popen([sys.executable, "-c", LOADGEN, url, str(args.requests), str(args.clients), str(turns_file)],
                                stdout=subprocess.PIPE, text=True)
        procs.append(load)
        assert load.stdout is not None
        errors = 0
        for line in load.stdout:
            progress = json.loads(line)
            errors = progress["errors"]
            if progress.get("final") and progress["done"] == samples[-1][0]:
                continue
            rss, fds = sample(serve.pid)
            samples.append((progress["done"], rss, fds, time.monotonic() - started))
            print(f"{progress['done']:>6} requests  RSS {rss:7.1f} MiB  FDs {fds:4d}  5xx {errors}", flush=True)
        load.wait()
        import httpx

        metrics = httpx.get(url + "/metrics").text
        learned = next((line.split()[-1] for line in metrics.splitlines() if line.startswith("memlane_learned_total")), "?")
    finally:
        stop(procs)

    base = next(s for s in samples if s[0] >= args.warmup)
    last = samples[-1]
    lines = [
        f"`memlane serve` (SQLite, default embedder, learning on: one fact per exchange) under {args.requests:,} mixed requests "
        f"from {args.clients} keep-alive clients in a separate process; real text (LoCoMo dev turns), 40 users. "
        f"{last[3]:.0f} s in all, {last[0] / last[3]:.0f} req/s; {errors} server errors; {learned} exchanges learnt.",
        "",
        f"After warm-up ({base[0]:,} requests) to the end: RSS x{last[1] / base[1]:.3f} ({base[1]:.0f} -> {last[1]:.0f} MiB), "
        f"FDs x{last[2] / base[2]:.3f} ({base[2]} -> {last[2]}).",
        "",
        "| requests | seconds | RSS MiB | open FDs |",
        "|---|---|---|---|",
    ]
    lines += [f"| {n:,} | {t:.0f} | {r:.1f} | {f} |" for n, r, f, t in samples]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
