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

``--sustained``: what a server keeps up forever, learning included: chats answered during the
load over the load plus the time until the outbox is empty again, with the backlog, the LLM
calls per exchange, and the per-request CPU split (HTTP, request handling, recall, upstream call,
outbox write, event loop; learning per exchange in the learner processes): the method is in
``cpu_split.py``. Rows: ``--workers`` (1,2) x ``--clients`` (1,8,64), the process learner; the
upstream alone and (``--litellm``: LiteLLM's proxy installed in /tmp/litellm-venv, no memory,
same upstream) as anchors at each client count, ratios against the upstream alone in the same
run, the load average beside every row. ``--ab c1,c2 --repeat 2``: the same rows served from
each commit's tree in turn (A/B in one run, same machine state); ``--store``: reuse a built store.

    python bench/server_throughput.py --sustained --seconds 15 --store /tmp/store100k.db --litellm

Needs ``wrk`` (``apt-get install -y wrk``); py-spy for the split. Writes
``bench/results/server_throughput.md`` (``--sustained``: ``server_sustained.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
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
            "errors": float(errors[1]) if errors else 0.0, "requests": float(re.search(r"(\d+) requests in", out)[1])}  # type: ignore[index]


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


def processes_of(serve: subprocess.Popen) -> tuple[list[int], list[int]]:
    """The pids serving chats (``memlane serve`` and, with ``--workers``, its workers) and those
    of its learner processes."""
    import psutil

    server, learners = [serve.pid], []
    for child in psutil.Process(serve.pid).children(recursive=True):
        try:
            (learners if "memlane.server.learner_process" in " ".join(child.cmdline()) else server).append(child.pid)
        except psutil.Error:
            pass
    return server, learners


def sustained(config: Path, work: Path, bodies: Path, seconds: float, clients: list[int], learners: list[str],
              workers: list[int] | None = None, upstream: subprocess.Popen | None = None,
              sources: list[str] | None = None, repeat: int = 1) -> list[dict[str, Any]]:
    """The rate a server can keep up forever: chats answered during a ``seconds`` load, over
    that load plus the time the learner then needs to empty the outbox; with the backlog at the
    end of the load, the memory-LLM calls per exchange learnt and the CPU split (cpu_split.py).
    Each (learner, workers, source) setting gets its own server on the same store, each client
    count starts from an empty outbox; ``sources``: memlane source trees to compare (an A/B of two
    commits, ``--ab``), each setting run ``repeat`` times, the sources alternating."""
    from cpu_split import Sampler, cpu_seconds, split_ms, thread_seconds

    rows = []
    settings = [(learner, nworkers, src) for learner in learners for nworkers in workers or [1]
                for _ in range(repeat) for src in sources or [None]]
    for learner, nworkers, src in settings:
        mode_config = work / f"sustained-{learner}.json"
        mode_config.write_text(json.dumps({**json.loads(config.read_text()), "server": {"learner": learner}}))
        serve, url = start_serve(mode_config, work / "home", workers=nworkers, src=src)
        try:
            for _ in range(2 * nworkers):
                wrk(url + "/v1/chat/completions", bodies, 2, 4, work)  # warm every path (every worker)
            drained(url)
            for connections in clients:
                learnt0, calls0 = metric(url, "memlane_learned_total"), metric(url, "memlane_learning_llm_calls_total")
                server_pids, learner_pids = processes_of(serve)
                cpu0 = {pid: cpu_seconds(pid) for pid in server_pids + learner_pids}
                threads0 = thread_seconds(server_pids)
                up0 = cpu_seconds(upstream.pid) if upstream is not None else 0.0
                sampler = Sampler(serve.pid, seconds, work / f"spy-{learner}-{nworkers}-{connections}-{len(rows)}.txt", subprocesses=nworkers > 1)
                result = wrk(url + "/v1/chat/completions", bodies, seconds, connections, work)
                server_cpu = sum(cpu_seconds(pid) - cpu0[pid] for pid in server_pids)
                threads = {k: v - threads0[k] for k, v in thread_seconds(server_pids).items()}
                learner_cpu = sum(cpu_seconds(pid) - cpu0[pid] for pid in learner_pids)
                up_cpu = (cpu_seconds(upstream.pid) - up0) if upstream is not None else float("nan")
                backlog = metric(url, "memlane_outbox_depth")
                learnt_during = metric(url, "memlane_learned_total") - learnt0
                counts = sampler.counts()
                drain_s = drained(url)
                learnt = metric(url, "memlane_learned_total") - learnt0
                calls = metric(url, "memlane_learning_llm_calls_total") - calls0
                answered = result["requests"]
                row = {"learner": learner, "workers": nworkers, "src": src, "connections": connections, **result, "answered": answered,
                       "backlog": backlog, "learnt_during": learnt_during, "drain_s": drain_s,
                       "sustained": answered / (seconds + drain_s),
                       "calls_per_exchange": calls / learnt if learnt else float("nan"),
                       "cpu": split_ms(threads, answered, counts),
                       # the learner's CPU during the load, per exchange it learnt then (with a thread learner it is in the server's)
                       "learning_ms": learner_cpu * 1000 / learnt_during if learner_pids and learnt_during else float("nan"),
                       "upstream_ms": up_cpu * 1000 / answered if answered else float("nan"),
                       "server_cores": server_cpu / seconds, "learner_cores": learner_cpu / seconds, "load": load_average()}
                rows.append(row)
                print("sustained", row, flush=True)
        finally:
            stop([serve])
    return rows


def label(row: dict[str, Any]) -> str:
    """`` (src-abc1234)`` for a row of an A/B, else nothing."""
    if not row.get("src"):
        return ""
    *extra, tree = row["src"].split(os.pathsep)
    return f" ({Path(tree).parent.name}{''.join(' + ' + Path(e).name for e in extra)})"


def load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def sustained_table(rows: list[dict[str, Any]], anchors: list[dict[str, Any]], seconds: float, note: str) -> list[str]:
    """The sustained rows (ratios against the upstream alone at the same client count, in the
    same run), the anchors' rows (upstream alone, LiteLLM's proxy) and the CPU split."""
    def base(connections: int) -> float:
        return next((a["rps"] for a in anchors if a["path"] == "upstream alone" and a["connections"] == connections), float("nan"))

    lines = [f"Sustained rate: chats answered during a {seconds:.0f} s wrk load, over the load plus the time until the outbox "
             f"is empty again; one new fact per exchange (scripted memory LLM, `--facts`). {note}.", "",
             "| path | clients | answered req/s | vs upstream | p50 ms | p99 ms | non-2xx | learnt during load | backlog at end | drain s "
             "| **sustained chats/s** | LLM calls / exchange | load avg 1/5/15 |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in anchors:
        lines.append(f"| {r['path']} | {r['connections']} | {r['rps']:.0f} | {r['rps'] / base(r['connections']):.3f}x | {r['p50']:.1f} "
                     f"| {r['p99']:.1f} | {r['errors']:.0f} | - | - | - | - | - | {r['load']} |")
    for r in rows:
        lines.append(f"| memlane, {r['learner']} learner, {r['workers']} worker{'s' if r['workers'] > 1 else ''}{label(r)} | {r['connections']} "
                     f"| {r['rps']:.0f} | {r['rps'] / base(r['connections']):.3f}x | {r['p50']:.1f} | {r['p99']:.1f} | {r['errors']:.0f} "
                     f"| {r['learnt_during']:.0f} | {r['backlog']:.0f} | {r['drain_s']:.1f} | **{r['sustained']:.0f}** "
                     f"| {r['calls_per_exchange']:.2f} | {r['load']} |")
    from cpu_split import ORDER

    lines += ["", "CPU per request (ms; cpu_split.py: the server's CPU from the kernel, split by py-spy samples; learning is the "
              "learner processes' CPU per exchange learnt during the load; the upstream's is the scripted model server's):", "",
              "| setting | clients | **server total** | of it the event loop thread | " + " | ".join(ORDER) + " | learning (learner, per exchange) | upstream server "
              "| server cores used | learner cores used | py-spy samples |", "|---|---|---|---|" + "---|" * len(ORDER) + "---|---|---|---|---|"]
    for r in rows:
        c = r["cpu"]
        lines.append(f"| {r['learner']} learner, {r['workers']}w{label(r)} | {r['connections']} | **{c['server_ms']:.2f}** | {c['loop_ms']:.2f} | "
                     + " | ".join(f"{c[name]:.2f}" for name in ORDER)
                     + f" | {r['learning_ms']:.2f} | {r['upstream_ms']:.2f} | {r['server_cores']:.2f} | {r['learner_cores']:.2f} | {c['samples']} |")
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
    parser.add_argument("--learners", default="process", help="server.learner settings to compare (--sustained)")
    parser.add_argument("--workers", default="1,2", help="memlane serve --workers settings to compare (--sustained)")
    parser.add_argument("--litellm", action="store_true", help="LiteLLM's proxy as an anchor (--sustained; LITELLM_BIN, default /tmp/litellm-venv/bin/litellm)")
    parser.add_argument("--ab", default=None, help="commits to compare, comma-separated (--sustained): each served from its own src tree")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each setting, sources alternating (--sustained --ab)")
    parser.add_argument("--store", default=None, help="a store built by an earlier run, reused (--sustained; built there when missing)")
    parser.add_argument("--config-extra", default="{}", help='config sections added to the served config (--sustained), e.g. \'{"outbox": {"batch_wait_seconds": 0.1}}\'')
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


def litellm_proxy(upstream_url: str, work: Path) -> tuple[subprocess.Popen | None, str]:
    """LiteLLM's proxy (``--litellm``: its venv's ``litellm`` binary), no memory, in front of the
    same upstream; (None, why) when it is not there or does not come up."""
    from processes import free_port, wait_http

    binary = Path(os.environ.get("LITELLM_BIN", "/tmp/litellm-venv/bin/litellm"))
    if not binary.exists():
        return None, f"{binary} not found"
    port = free_port()
    cfg = work / "litellm.yaml"
    cfg.write_text("model_list:\n  - model_name: m\n    litellm_params:\n      model: openai/m\n"
                   f"      api_base: {upstream_url}\n      api_key: k\n")
    log = (work / "litellm.log").open("w")
    proc = subprocess.Popen([str(binary), "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=work,
                            env={**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False", "NO_DOCS": "True",
                                 # no master key: a loopback benchmark, as memlane's own loopback serve needs none
                                 "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true"})
    try:
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                wait_http(f"http://127.0.0.1:{port}/health/liveliness", timeout=2)
                break
            except RuntimeError:
                continue
        else:
            raise RuntimeError("down")
    except RuntimeError:
        stop([proc])
        return None, "it did not come up in 180 s: " + (work / "litellm.log").read_text()[-500:]
    return proc, f"http://127.0.0.1:{port}"


def checkout(commit: str, work: Path) -> str:
    """The ``src`` tree of ``commit`` (git archive into ``work``): what an A/B's server runs;
    ``commit+/some/dir``: that tree with ``/some/dir`` before it on the path (packages installed
    there with ``pip install --target``: uvloop, httptools)."""
    commit, _, extra = commit.partition("+")
    if extra:
        return f"{extra}{os.pathsep}{checkout(commit, work)}"
    short = subprocess.run(["git", "rev-parse", "--short", commit], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    target = work / f"src-{short}"
    if target.exists():
        return str(target / "src")
    target.mkdir()
    archive = subprocess.run(["git", "archive", commit, "src"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return str(target / "src")


def main_sustained(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="memlane-sustained-"))
    turns = locomo_turns()
    up, upstream_url = start_upstream("--facts")
    clients = [int(c) for c in args.clients.split(",")]
    anchors: list[dict[str, Any]] = []
    notes: list[str] = []
    try:
        rng = random.Random(3)
        chats = [{"model": "m", "messages": [{"role": "user", "content": rng.choice(turns)}]} for _ in range(2000)]
        bodies = work / "recall.jsonl"
        bodies.write_text("\n".join(json.dumps({**c, "user_id": "alice"}) for c in chats) + "\n")
        plain = work / "plain.jsonl"
        plain.write_text("\n".join(json.dumps(c) for c in chats) + "\n")
        embedder = EMBEDDERS["static"]
        db, load_s = work / "static.db", 0.0
        if args.store and Path(args.store).exists():  # a fresh copy: learning adds to the store
            shutil.copyfile(args.store, db)
        else:
            load_s = build_store(db, embedder, turns, args.scope_size, args.store_size)
            if args.store:
                shutil.copyfile(db, args.store)
        config = work / "static.json"
        config.write_text(json.dumps({"vector_store": {"provider": "sqlite", "config": {"path": str(db)}}, "embedder": embedder,
                                      "upstream": {"base_url": upstream_url, "api_key": "k"}, **json.loads(args.config_extra)}))
        paths = [("upstream alone", upstream_url + "/chat/completions")]
        litellm, where = (litellm_proxy(upstream_url, work) if args.litellm else (None, "not asked for (--litellm)"))
        if litellm is not None:
            paths.append(("LiteLLM proxy, no memory", where + "/v1/chat/completions"))
            wrk(where + "/v1/chat/completions", plain, 2, 4, work)
        else:
            notes.append(f"LiteLLM proxy: {where}")
        try:
            for connections in clients:
                for name, url in paths:
                    anchors.append({"path": name, "connections": connections, **wrk(url, plain, args.seconds, connections, work),
                                    "load": load_average()})
                    print("anchor", anchors[-1], flush=True)
        finally:
            if litellm is not None:
                stop([litellm])
        sources = [checkout(commit, work) for commit in args.ab.split(",")] if args.ab else None
        rows = sustained(config, work, bodies, args.seconds, clients, args.learners.split(","),
                         [int(w) for w in args.workers.split(",")], upstream=up, sources=sources, repeat=args.repeat)
    finally:
        stop([up])
    note = (f"Static embedder; {args.store_size:,} real-text memories, {args.scope_size:,} in the recalled scope"
            + (f" (loaded in {load_s:.0f} s)" if load_s else "") + f"; {time.strftime('%Y-%m-%d %H:%M')}; " + "; ".join(notes))
    lines = sustained_table(rows, anchors, args.seconds, note.rstrip("; "))
    out = Path(args.out if args.out != str(ROOT / "bench" / "results" / "server_throughput.md")
               else ROOT / "bench" / "results" / "server_sustained.md")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
