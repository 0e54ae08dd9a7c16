"""Throughput and latency of ``memlane serve`` under load, against the upstream alone and the plain
proxy, on real text with learning on.

Processes besides this one: the scripted upstream (``--facts``: every exchange teaches a fact,
so learning extracts, reconciles and stores while the load runs), ``memlane serve`` (embedded
SQLite store), and ``wrk`` as the load generator (C, two threads: it does not eat the cores it
measures). The store holds LoCoMo dev turns recombined into unique texts: ``--scope-size`` in
alice's scope (the one recalled) and ``--store-size`` in all. Each chat's user turn is a LoCoMo
turn too, so recall runs keyword search on real words. Three paths, each at 8 and 64 keep-alive
connections: (a) straight to the upstream, (b) through memlane without a scope (plain proxy),
(c) through memlane with recall (``user_id``, learning on).

    python bench/server_throughput.py [--seconds 10] [--embedders static,minilm]

Needs ``wrk`` (``apt-get install -y wrk``). Writes ``bench/results/server_throughput.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from processes import start_serve, start_upstream, stop  # noqa: E402
from soak import locomo_turns  # noqa: E402

EMBEDDERS = {"static": {"provider": "model2vec"}, "minilm": {"provider": "sentence_transformers"}}

WRK_SCRIPT = r'''
local bodies = {}
local n = 0
init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
end
request = function()
  n = n + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[(n % #bodies) + 1])
end
'''


def recombined(turns: list[str], count: int, seed: int) -> list[str]:
    """``count`` unique real-text memories: two LoCoMo turns joined (never synthetic words)."""
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < count:
        out.add(f"{rng.choice(turns)} {rng.choice(turns)}")
    return sorted(out)


def build_store(db: Path, embedder: dict[str, Any], turns: list[str], scope_size: int, store_size: int) -> float:
    from memlane import Memory

    started = time.perf_counter()
    with Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(db)}}, "embedder": embedder}) as memory:
        texts = recombined(turns, store_size, 7)
        for start in range(0, len(texts), 1000):
            user = "alice" if start < scope_size else f"user{start // 1000}"
            memory.add(texts[start:start + 1000], user_id=user, infer=False)
    return time.perf_counter() - started


def wrk(url: str, bodies: Path, seconds: float, connections: int, work: Path) -> dict[str, float]:
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT)
    out = subprocess.run(["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds:.0f}s", "--latency", "-s", str(script), url, "--", str(bodies)],
                         capture_output=True, text=True, timeout=seconds + 60, check=True).stdout

    def ms(label: str) -> float:
        found = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        if not found:
            return float("nan")
        value, unit = float(found[1]), found[2]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]), "p50": ms("50"), "p99": ms("99"),  # type: ignore[index]
            "errors": float(errors[1]) if errors else 0.0}


def metric(url: str, name: str) -> float:
    """The default project's value of one /metrics series (0 when it is not there yet)."""
    import httpx

    found = re.search(rf'^{name}{{project="default"}} ([\d.e+-]+)$', httpx.get(url + "/metrics", timeout=30).text, re.M)
    return float(found[1]) if found else 0.0


def drained(url: str, timeout: float = 600) -> float:
    """Seconds until the default project's outbox is empty (learnt, or set aside as dead)."""
    started = time.perf_counter()
    while metric(url, "memlane_outbox_depth") > 0 and time.perf_counter() - started < timeout:
        time.sleep(0.1)
    return time.perf_counter() - started


def sustained(config: Path, work: Path, bodies: Path, seconds: float, clients: list[int], learners: list[str]) -> list[dict[str, Any]]:
    """The rate a server can keep up forever: chats answered during a ``seconds`` load, over
    that load plus the time the learner then needs to empty the outbox; with the backlog at the
    end of the load and the memory-LLM calls per exchange learnt. Each learner setting gets its
    own server on the same store, each client count starts from an empty outbox."""
    rows = []
    for learner in learners:
        mode_config = work / f"sustained-{learner}.json"
        mode_config.write_text(json.dumps({**json.loads(config.read_text()), "server": {"learner": learner}}))
        serve, url = start_serve(mode_config, work / "home")
        try:
            wrk(url + "/v1/chat/completions", bodies, 2, 4, work)  # warm every path
            drained(url)
            for connections in clients:
                learnt0, calls0 = metric(url, "memlane_learned_total"), metric(url, "memlane_learning_llm_calls_total")
                result = wrk(url + "/v1/chat/completions", bodies, seconds, connections, work)
                backlog = metric(url, "memlane_outbox_depth")
                learnt_during = metric(url, "memlane_learned_total") - learnt0
                drain_s = drained(url)
                learnt = metric(url, "memlane_learned_total") - learnt0
                calls = metric(url, "memlane_learning_llm_calls_total") - calls0
                answered = result["rps"] * seconds
                row = {"learner": learner, "connections": connections, **result, "answered": answered, "backlog": backlog,
                       "learnt_during": learnt_during, "drain_s": drain_s, "sustained": answered / (seconds + drain_s),
                       "calls_per_exchange": calls / learnt if learnt else float("nan")}
                rows.append(row)
                print("sustained", row, flush=True)
        finally:
            stop([serve])
    return rows


def sustained_table(rows: list[dict[str, Any]], seconds: float, note: str) -> list[str]:
    lines = [f"Sustained rate: chats answered during a {seconds:.0f} s wrk load, over the load plus the time until the outbox "
             f"is empty again; one new fact per exchange (scripted memory LLM, `--facts`). {note}.", "",
             "| learner | clients | answered req/s | p50 ms | p99 ms | non-2xx | learnt during load | backlog at end | drain s "
             "| **sustained chats/s** | LLM calls / exchange |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['learner']} | {r['connections']} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['errors']:.0f} "
                     f"| {r['learnt_during']:.0f} | {r['backlog']:.0f} | {r['drain_s']:.1f} | **{r['sustained']:.0f}** "
                     f"| {r['calls_per_exchange']:.2f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--embedders", default="static,minilm")
    parser.add_argument("--scope-size", type=int, default=10_000)
    parser.add_argument("--store-size", type=int, default=100_000)
    parser.add_argument("--minilm-store-size", type=int, default=10_000, help="MiniLM embeds ~100 texts/s here: 100k would take 17 min")
    parser.add_argument("--alignment-weight", type=float, default=None, help="retrieval.alignment_weight (default: memlane's)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "server_throughput.md"))
    parser.add_argument("--sustained", action="store_true",
                        help="only the sustained rate (answered and learnt), thread vs process learner, static embedder")
    parser.add_argument("--clients", default="1,8,64")
    parser.add_argument("--learners", default="thread,process", help="server.learner settings to compare (--sustained)")
    args = parser.parse_args()
    if args.sustained:
        return main_sustained(args)
    work = Path(tempfile.mkdtemp(prefix="memlane-throughput-"))
    turns = locomo_turns()
    procs: list[subprocess.Popen] = []
    rows: list[tuple[str, int, str, dict[str, float]]] = []
    notes: list[str] = []
    try:
        up, upstream_url = start_upstream("--facts")
        procs.append(up)
        queries = work / "queries.jsonl"
        rng = random.Random(3)
        chat = [{"model": "m", "messages": [{"role": "user", "content": rng.choice(turns)}]} for _ in range(2000)]
        queries.write_text("\n".join(json.dumps(b) for b in chat) + "\n")
        recall = work / "recall.jsonl"
        recall.write_text("\n".join(json.dumps({**b, "user_id": "alice"}) for b in chat) + "\n")
        for name in args.embedders.split(","):
            embedder = EMBEDDERS[name]
            store_size = args.store_size if name == "static" else min(args.store_size, args.minilm_store_size)
            db = work / f"{name}.db"
            load_s = build_store(db, embedder, turns, args.scope_size, store_size)
            notes.append(f"{name}: {store_size:,} memories ({args.scope_size:,} in the recalled scope) loaded in {load_s:.0f} s")
            config = work / f"{name}.json"
            config.write_text(json.dumps({"vector_store": {"provider": "sqlite", "config": {"path": str(db)}}, "embedder": embedder,
                                          "upstream": {"base_url": upstream_url, "api_key": "k"},
                                          **({"retrieval": {"alignment_weight": args.alignment_weight}} if args.alignment_weight is not None else {})}))
            serve, memlane_url = start_serve(config, work / "home")
            procs.append(serve)
            modes = [("upstream alone", upstream_url + "/chat/completions", queries),
                     ("memlane, no scope (plain proxy)", memlane_url + "/v1/chat/completions", queries),
                     ("memlane, recall on, learning on", memlane_url + "/v1/chat/completions", recall)]
            for _, url, bodies in modes:  # warm every path
                wrk(url, bodies, 2, 4, work)
            for connections in (1, 8, 64):
                for mode, url, bodies in modes:
                    result = wrk(url, bodies, args.seconds, connections, work)
                    rows.append((name, connections, mode, result))
                    print(name, connections, mode, result, flush=True)
            stop([serve])
            procs.remove(serve)
            # the same recall with learning off (the memory LLM on a closed port, retries an hour
            # apart): what learning costs the foreground, in the same run
            quiet = work / f"{name}-quiet.json"
            quiet.write_text(json.dumps({**json.loads(config.read_text()), "outbox": {"retry_base_seconds": 3600, "max_attempts": 1},
                                         "llm": {"provider": "openai", "config": {"base_url": "http://127.0.0.1:9/v1", "max_retries": 0}}}))
            serve, memlane_url = start_serve(quiet, work / "home")
            procs.append(serve)
            wrk(memlane_url + "/v1/chat/completions", recall, 2, 4, work)
            for connections in (1, 8, 64):
                result = wrk(memlane_url + "/v1/chat/completions", recall, args.seconds, connections, work)
                rows.append((name, connections, "memlane, recall on, learning off", result))
                print(name, connections, "learning off", result, flush=True)
            stop([serve])
            procs.remove(serve)
    finally:
        stop(procs)
    lines = ["wrk (2 threads) against each path for "
             f"{args.seconds:.0f} s; ratios are to the upstream alone at the same concurrency in the same run. " + "; ".join(notes) + ".",
             "", "| embedder | connections | path | req/s | vs upstream | p50 ms | p99 ms | non-2xx |", "|---|---|---|---|---|---|---|---|"]
    for name, connections, mode, r in rows:
        base = next(x for n, c, m, x in rows if n == name and c == connections and m == "upstream alone")
        lines.append(f"| {name} | {connections} | {mode} | {r['rps']:.0f} | {r['rps'] / base['rps']:.3f}x | {r['p50']:.1f} | {r['p99']:.1f} | {r['errors']:.0f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main_sustained(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="memlane-sustained-"))
    turns = locomo_turns()
    up, upstream_url = start_upstream("--facts")
    try:
        rng = random.Random(3)
        bodies = work / "recall.jsonl"
        bodies.write_text("\n".join(json.dumps({"model": "m", "user_id": "alice", "messages": [{"role": "user", "content": rng.choice(turns)}]})
                                    for _ in range(2000)) + "\n")
        embedder = EMBEDDERS["static"]
        db = work / "static.db"
        load_s = build_store(db, embedder, turns, args.scope_size, args.store_size)
        config = work / "static.json"
        config.write_text(json.dumps({"vector_store": {"provider": "sqlite", "config": {"path": str(db)}}, "embedder": embedder,
                                      "upstream": {"base_url": upstream_url, "api_key": "k"}}))
        rows = sustained(config, work, bodies, args.seconds, [int(c) for c in args.clients.split(",")], args.learners.split(","))
    finally:
        stop([up])
    note = (f"Static embedder; {args.store_size:,} real-text memories, {args.scope_size:,} in the recalled scope (loaded in "
            f"{load_s:.0f} s); {time.strftime('%Y-%m-%d')}")
    lines = sustained_table(rows, args.seconds, note)
    out = Path(args.out if args.out != str(ROOT / "bench" / "results" / "server_throughput.md")
               else ROOT / "bench" / "results" / "server_sustained.md")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
