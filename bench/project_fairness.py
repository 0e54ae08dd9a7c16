"""One project's reads while another floods the server with slow ``infer`` adds.

``memlane serve`` (its own process, SQLite) with two projects' keys; the scripted upstream (in
this process: it only sleeps) answers the memory LLM's extraction and reconcile calls after
``--delay`` seconds each. Project A has ``--memories`` memories in one scope and reads them
(``GET /v1/memories?limit=20``) one request after another; ``/readyz`` is read between. First
with B idle, then while B keeps ``--flood`` concurrent ``infer: true`` adds in flight (each
thread adds again as soon as it is answered, 200 or 429). The issue this answers: 8 such adds
made A's read take 13.8 s, and 40 made it time out (one shared pool of 6 threads).

    python bench/project_fairness.py [--seconds 20] [--flood 40] [--delay 2]

Writes ``bench/results/project_fairness.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from processes import start_serve, stop  # noqa: E402

from memlane.server.keys import KeyStore  # noqa: E402
from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream  # noqa: E402


def slow_memory_llm(delay: float):  # type: ignore[no-untyped-def]
    def handler(req: ScriptedRequest) -> Reply:
        if req.stage == "extract":
            return Reply.json({"facts": [f"Likes tea number {time.monotonic_ns()}"]}, delay=delay)
        if req.stage == "reconcile":
            new = req.reconcile_payload["new_facts"]
            return Reply.json({"memory": [{"id": str(1000 + i), "text": f, "event": "ADD"} for i, f in enumerate(new)]}, delay=delay)
        return Reply.text("ok")
    return handler


def quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def measure(url: str, headers: dict[str, str], seconds: float) -> tuple[list[float], list[float], int]:
    """A's reads and /readyz, alternately, for ``seconds``: their latencies and the errors."""
    reads, ready, errors = [], [], 0
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=60) as http:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            r = http.get("/v1/memories", headers=headers, params={"user_id": "alice", "limit": 20})
            reads.append(time.perf_counter() - started)
            errors += r.status_code != 200
            started = time.perf_counter()
            errors += http.get("/readyz").status_code != 200
            ready.append(time.perf_counter() - started)
    return reads, ready, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20, help="measuring time per phase")
    parser.add_argument("--flood", type=int, default=40, help="B's concurrent infer adds")
    parser.add_argument("--delay", type=float, default=2.0, help="seconds the memory LLM takes per call")
    parser.add_argument("--memories", type=int, default=200, help="memories in A's scope")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "project_fairness.md")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="memlane-fairness-"))
    home = tmp / "home"
    keys = KeyStore(home / "keys.db")
    a = {"Authorization": f"Bearer {keys.create('acme')[0]}"}
    b = {"Authorization": f"Bearer {keys.create('globex')[0]}"}
    procs = []
    with ScriptedUpstream() as upstream:
        upstream.handler = slow_memory_llm(args.delay)
        config = {"vector_store": {"provider": "sqlite", "config": {"path": str(tmp / "memlane.db")}},
                  "upstream": {"base_url": upstream.url, "api_key": "k", "max_retries": 0},
                  "llm": {"provider": "openai", "config": {"model": "scripted-model", "max_retries": 0}}}
        (tmp / "config.json").write_text(json.dumps(config))
        serve, url = start_serve(tmp / "config.json", home)
        procs.append(serve)
        try:
            with httpx.Client(base_url=url, timeout=60) as http:
                for i in range(args.memories):
                    http.post("/v1/memories", headers=a, json={"messages": f"Fact number {i} about alice", "user_id": "alice",
                                                               "infer": False}).raise_for_status()
                http.get("/v1/memories", headers=b, params={"user_id": "bob"}).raise_for_status()
            idle = measure(url, a, args.seconds)

            stopping = threading.Event()
            answers: Counter[int] = Counter()

            def flood() -> None:
                with httpx.Client(base_url=url, timeout=300) as own:
                    while not stopping.is_set():
                        r = own.post("/v1/memories", headers=b, json={"messages": "I like green tea", "user_id": "bob"})
                        answers[r.status_code] += 1
                        if r.status_code == 429:
                            time.sleep(min(float(r.headers.get("retry-after", 1)), 1.0))

            threads = [threading.Thread(target=flood, daemon=True) for _ in range(args.flood)]
            for t in threads:
                t.start()
            time.sleep(min(3.0, args.delay * 1.5))  # B's adds are waiting on the model
            loaded = measure(url, a, args.seconds)
            during = dict(sorted(answers.items()))  # (what is cut off by the shutdown below is not B's answer)
            stopping.set()
        finally:
            stop(procs)

    rows = []
    for name, (reads, ready, errors) in (("B idle", idle), (f"B: {args.flood} concurrent infer adds", loaded)):
        rows.append(f"| {name} | {len(reads)} | {statistics.median(reads) * 1000:.1f} | {quantile(reads, 0.99) * 1000:.1f} | "
                    f"{max(reads) * 1000:.1f} | {statistics.median(ready) * 1000:.1f} | {quantile(ready, 0.99) * 1000:.1f} | {errors} |")
    table = "\n".join([
        f"# Project fairness ({time.strftime('%Y-%m-%d')})",
        "",
        f"Project A reads 20 of its {args.memories} memories (`GET /v1/memories`), one request after another, with `/readyz`"
        f" between, for {args.seconds:g} s per phase; project B floods `POST /v1/memories` (`infer: true`) against a memory"
        f" LLM taking {args.delay:g} s per call. Server defaults: `server.project_threads` 4, `project_slow_threads` 4,"
        " `project_queue` 64. Milliseconds.",
        "",
        "| phase | A's reads | read p50 | read p99 | read max | /readyz p50 | /readyz p99 | A's errors |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"B's answers while A measured: {during} (429: its lanes were full; it then retried after at most 1 s).",
        "",
    ])
    args.out.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
