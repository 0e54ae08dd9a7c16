"""The learner's CPU per exchange, without a server or wrk: what ``memlane serve``'s learner
process spends to learn one chat's exchange, and where it goes (issue 22: ~9 ms per exchange
measured under load; 200 sustained chats/s on 2 cores needs ~5).

Setup, as ``server_throughput.py --sustained`` has it: a SQLite store of LoCoMo dev turns
recombined (two joined turns per memory, all unique), ``--scope-size`` of them in alice's scope
and ``--store-size`` in all; static embedder; the scripted memory LLM (``scripted_upstream
--facts``, its own process, so its CPU is not counted) makes every exchange teach one fact, the
first sentence of its user turn (a LoCoMo turn), and reconcile add what is new. Exchanges are the
server's payloads (user turn, the scripted answer, model "m"), put in the outbox ``--arrive`` at
a time (under load at 8 clients the learner finds ~8 waiting: 0.25 LLM calls per exchange),
``--gap`` seconds apart once the previous arrival is learnt; the server's ``Learner`` (its worker
threads, the default ``outbox`` settings: 2 workers, batches of 8) learns them, as in the learner
process. ``--warmup`` exchanges first (the scope's vector cache and keyword index built), then
``--exchanges`` measured: the process's CPU time (user + system, not wall) less the main
thread's (it only enqueues and waits), per exchange learnt.

The stage split comes from a further run of each source over the same exchanges (on a fresh
copy of the store) with py-spy sampling the measured part (``/tmp/pyspy-venv``): each stage's
share of the learner threads' busy samples, applied to the CPU measured without it: claim (the outbox lease, the release of what does not batch),
grouping (``batch_size_of``), extraction call (HTTP + JSON, of which the HTTP client), fact
check, embedding, reconcile searches (of which: vector cache and keyword index catch-up, the
record fetch), reconcile call, changes, apply (the write transaction: memories, vectors, FTS,
history, journal, outbox done), outbox done alone, guidance, and what an idle worker does.

A/B: ``--ab c1,c2`` runs each commit's ``src`` (``git archive``; ``.`` for this tree as it is)
in turn, ``--repeat`` times interleaved, each on a fresh copy of the same store; ratios are
against the first, the load average beside each run. ``--variants``: config sections each
commit also runs with (``'[{}, {"outbox": {"batch_wait_seconds": 0.1}}]'``), interleaved the
same way. ``--rate R``: exchanges arrive one by one at R per second whatever the learner does
(a server's steady stream) instead of ``--arrive`` at a time. Writes
``bench/results/learning_cpu.md``.

    python bench/learning_cpu.py --ab 8b06ac5,. --repeat 5 --store /tmp/learncpu.db
    python bench/learning_cpu.py --ab . --rate 80 --variants '[{}, {"outbox": {"batch_wait_seconds": 0.1}}]' --no-profile
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from server_throughput import load_average  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "learning_cpu.md"
EMBEDDER = {"provider": "model2vec"}
#: the chat model the server's payloads name (the scripted upstream answers any)
MODEL = "m"
#: what the scripted upstream answers a chat (``ScriptedUpstream.default_reply``)
ANSWER = "This is a scripted answer."

#: (stage, frames that mark it) for the py-spy split: a sample goes to every stage one of whose
#: frames (py-spy's "Class.function (path:line)", matched on "Class.function (path") is in its stack;
#: top-level stages do not nest in one another, "of which" rows (``SUBSTAGES``) nest in their parent
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("claim (outbox lease, release)", ("SQLOutbox.claim_batch (memlane/stores/outbox.py", "SQLOutbox.release (memlane/stores/outbox.py")),
    ("grouping (batch_size_of)", ("batch_size_of (memlane/engine/learning.py",)),
    ("guidance (project settings)", ("Learning.guidance (memlane/engine/learning.py",)),
    ("extraction call", ("extract_batch_facts (memlane/engine/inference.py", "extract_facts (memlane/engine/inference.py")),
    ("fact check", ("Learning._checked (memlane/engine/learning.py",)),
    ("embedding", ("Memory._embed (memlane/engine/memory.py",)),
    ("reconcile searches", ("Learning._similar_existing (memlane/engine/learning.py",)),
    ("reconcile call", ("reconcile (memlane/engine/inference.py",)),
    ("changes", ("Learning._changes_for (memlane/engine/learning.py",)),
    ("apply (write transaction)", ("SQLiteStore.apply (memlane/stores/sqlite.py",)),
    ("outbox done alone", ("SQLOutbox.done (memlane/stores/outbox.py",)),
    ("learnt bookkeeping", ("Learner._learnt (memlane/engine/learner.py",)),
    ("idle: the memory LLM client closed", ("OpenAILLM.release_idle (memlane/llms/openai.py",)),
]
SUBSTAGES: list[tuple[str, str, tuple[str, ...]]] = [
    ("extraction call", "building the memory LLM client", ("build_client (memlane/openai_compat.py",)),
    ("extraction call", "the request through the openai SDK and httpx", ("SyncAPIClient.post (openai/_base_client.py",)),
    ("extraction call", "JSON parse", ("parse_batch_facts (memlane/engine/inference.py", "parse_facts (memlane/engine/inference.py")),
    ("reconcile searches", "vector cache catch-up", ("SQLiteStore._scope_vectors (memlane/stores/sqlite.py",)),
    ("reconcile searches", "keyword index catch-up", ("SQLStore._keyword_entry (memlane/stores/sql.py",)),
    ("reconcile searches", "keyword scoring", ("ScopeKeywords.search (memlane/stores/keyword_index.py",)),
    ("reconcile searches", "record fetch", ("SQLStore.fetch (memlane/stores/sql.py",)),
    ("reconcile searches", "fusion", ("fuse (memlane/engine/ranking.py",)),
    ("reconcile call", "the request through the openai SDK and httpx", ("SyncAPIClient.post (openai/_base_client.py",)),
    ("reconcile call", "JSON parse", ("parse_decisions (memlane/engine/inference.py",)),
    ("apply (write transaction)", "version bump and keyword journal", ("SQLStore._journal (memlane/stores/sql.py", "SQLStore._bump (memlane/stores/sql.py")),
    ("apply (write transaction)", "outbox done in the commit", ("SQLOutbox.finish (memlane/stores/outbox.py",)),
    ("apply (write transaction)", "commit", ("SQLiteStore._write (memlane/stores/sqlite.py",)),
]
#: a learner thread's samples (idle waits are left out by ``--nonblocking``'s idle filter)
LEARNER = "Learner._run (memlane/engine/learner.py"


def matches(stack: str, marks: tuple[str, ...]) -> bool:
    return any(m in stack for m in marks)


def spy_split(raw: Path) -> dict[str, float]:
    """Samples per stage (and ``total``: the learner threads' busy samples) of a py-spy raw file."""
    out = {"total": 0.0, **{s: 0.0 for s, _ in STAGES}, **{f"{p}: {s}": 0.0 for p, s, _ in SUBSTAGES}}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if LEARNER not in stack:
            continue
        n = float(count)
        out["total"] += n
        for stage, marks in STAGES:
            if matches(stack, marks):
                out[stage] += n
        for parent, stage, marks in SUBSTAGES:
            if matches(stack, marks) and matches(stack, dict(STAGES)[parent]):
                out[f"{parent}: {stage}"] += n
    return out


# -- the child: one source tree, one store copy --------------------------------------------------

def exchanges_of(turns: list[str], count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` chat exchanges as the server queues them, each user turn a LoCoMo turn."""
    rng = random.Random(seed)
    return [{"scope": {"user_id": "alice"}, "model": MODEL,
             "messages": [{"role": "user", "content": rng.choice(turns)}, {"role": "assistant", "content": ANSWER}]}
            for _ in range(count)]


def child(args: argparse.Namespace) -> dict[str, Any]:
    """Learn ``--warmup`` then ``--exchanges`` exchanges with the memlane on ``sys.path``:
    the measured CPU and LLM calls. ``--profile``: after the warm-up, say ``WARM`` and wait for
    a line on stdin (the parent attaches py-spy meanwhile)."""
    import memlane
    from memlane import Memory
    from memlane.engine.learner import Learner
    from soak import locomo_turns

    try:  # what the learner process does (memlane.server.learner_process)
        from memlane.server.cpu import one_blas_thread
        one_blas_thread()
    except ImportError:
        pass
    turns = locomo_turns()
    config = {"vector_store": {"provider": "sqlite", "config": {"path": args.db}}, "embedder": EMBEDDER,
              "llm": {"provider": "openai", "config": {"base_url": args.upstream, "api_key": "k", "max_retries": 0}},
              **json.loads(args.config_extra)}
    memory = Memory(config)
    learner = Learner(memory, memory.config.outbox)
    arrive = max(1, args.arrive)

    def learn(batch: list[dict[str, Any]]) -> tuple[float, float]:
        """The learner's CPU seconds (the process's, less this thread's: it only enqueues and
        waits) and the wall seconds, over ``batch`` arriving ``arrive`` at a time."""
        mine0, cpu0, wall0 = time.thread_time(), time.process_time(), time.perf_counter()
        if args.rate > 0:  # a steady stream, whatever the learner does meanwhile
            target = learner.counters.learned + len(batch)
            for n, exchange in enumerate(batch):
                memory.enqueue(exchange)
                learner.notify()
                time.sleep(max(0.0, wall0 + (n + 1) / args.rate - time.perf_counter()))
            deadline = time.monotonic() + 120
            while learner.counters.learned < target:
                if learner.counters.failed_attempts or time.monotonic() > deadline:
                    raise RuntimeError(f"learning failed: {learner.counters}")
                time.sleep(0.002)
            return (time.process_time() - cpu0) - (time.thread_time() - mine0), time.perf_counter() - wall0
        for start in range(0, len(batch), arrive):
            target = learner.counters.learned + len(batch[start:start + arrive])
            for exchange in batch[start:start + arrive]:
                memory.enqueue(exchange)
            learner.notify()
            deadline = time.monotonic() + 120
            while learner.counters.learned < target:
                if learner.counters.failed_attempts or time.monotonic() > deadline:
                    raise RuntimeError(f"learning failed: {learner.counters}")
                time.sleep(0.002)
            time.sleep(args.gap)
        return (time.process_time() - cpu0) - (time.thread_time() - mine0), time.perf_counter() - wall0

    learner.start()
    try:
        learn(exchanges_of(turns, args.warmup, 11))
        if args.profile:
            print("WARM", flush=True)
            sys.stdin.readline()
        calls0, learnt0 = learner.llm_calls.count, learner.counters.learned
        events0 = dict(learner.counters.events)
        cpu, wall = learn(exchanges_of(turns, args.exchanges, 12))
        learnt = learner.counters.learned - learnt0
        return {
            "memlane": str(Path(memlane.__file__).parents[1]), "exchanges": learnt,
            "cpu_ms": cpu * 1000 / learnt,
            "wall_ms": (wall - (0 if args.rate > 0 else args.gap * (args.exchanges / arrive))) * 1000 / learnt,
            "calls": (learner.llm_calls.count - calls0) / learnt, "batches": learner.counters.batches,
            "events": {k: v - events0.get(k, 0) for k, v in learner.counters.events.items()},
            "failed": learner.counters.failed_attempts, "fallbacks": learner.counters.batch_fallbacks,
            "memories": memory.store.count(), "load": load_average(),
        }
    finally:
        learner.stop()
        memory.close()


# -- the parent: the store, the upstream, the A/B ------------------------------------------------

def run_child(src: str, db: Path, upstream: str, args: argparse.Namespace, spy: Path | None, extra: str = "{}") -> dict[str, Any]:
    """One measured run of ``src`` on ``db`` (``extra``: config sections, JSON); ``spy``: py-spy
    samples the measured part into it."""
    env = {**os.environ, "PYTHONPATH": src}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--db", str(db), "--upstream", upstream,
           "--exchanges", str(args.exchanges), "--warmup", str(args.warmup), "--arrive", str(args.arrive), "--gap", str(args.gap),
           "--rate", str(args.rate), "--config-extra", extra]
    if spy is not None:
        cmd.append("--profile")
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdin is not None and proc.stdout is not None
    sampler = None
    if spy is not None:
        assert proc.stdout.readline().strip() == "WARM"
        sampler = subprocess.Popen([pyspy(), "record", "--nonblocking", "-r", "1000", "-f", "raw", "-o", str(spy), "--pid", str(proc.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        proc.stdin.write("go\n")
        proc.stdin.flush()
    out, err = proc.communicate(timeout=3600)
    if sampler is not None:
        sampler.wait(60)
    if proc.returncode:
        raise RuntimeError(f"child failed ({src}):\n{err[-4000:]}")
    return json.loads(out.strip().splitlines()[-1])


def pyspy() -> str:
    """cpu_split's py-spy (on PATH or in /tmp/pyspy-venv); this bench cannot profile without it."""
    from cpu_split import pyspy as find

    found = find()
    if found is None:
        raise SystemExit("py-spy not found (python3 -m venv /tmp/pyspy-venv && /tmp/pyspy-venv/bin/pip install py-spy), or --no-profile")
    return found


def source_tree(commit: str, work: Path) -> str:
    """``.``: this tree's ``src``; else the commit's (``server_throughput.checkout``)."""
    if commit == ".":
        return str(ROOT / "src")
    from server_throughput import checkout

    return checkout(commit, work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--exchanges", type=int, default=400, help="exchanges measured")
    parser.add_argument("--warmup", type=int, default=48, help="exchanges learnt before the measurement")
    parser.add_argument("--arrive", type=int, default=8, help="exchanges put in the outbox before each drain")
    parser.add_argument("--scope-size", type=int, default=10_000)
    parser.add_argument("--store-size", type=int, default=20_000)
    parser.add_argument("--store", help="reuse (or keep) the built store at this path")
    parser.add_argument("--ab", default=".", help="commits (or . for this tree), comma-separated; ratios against the first")
    parser.add_argument("--repeat", type=int, default=2, help="measured runs per source, interleaved")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy pass")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--gap", type=float, default=0.05, help="seconds between an arrival's drain and the next arrival")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="exchanges per second arriving one by one, whatever the learner does (instead of --arrive/--gap)")
    parser.add_argument("--variants", default="[{}]",
                        help='JSON list of config sections; each source runs with each, e.g. \'[{}, {"outbox": {"batch_wait_seconds": 0.1}}]\'')
    parser.add_argument("--config-extra", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return


    from processes import start_upstream, stop
    from server_throughput import build_store
    from soak import locomo_turns

    work = Path(tempfile.mkdtemp(prefix="memlane-learncpu-"))
    base = Path(args.store) if args.store else work / "base.db"
    if not base.exists():
        took = build_store(base, EMBEDDER, locomo_turns(), args.scope_size, args.store_size)
        print(f"store built in {took:.0f} s", flush=True)
    variants = json.loads(args.variants)
    trees = {c: source_tree(c, work) for c in args.ab.split(",")}
    # each (commit, variant) is one source of the report, named by the commit and the variant
    named = [(c if variant == {} else f"{c} {json.dumps(variant)}", tree, json.dumps(variant))
             for c, tree in trees.items() for variant in variants]
    commits = [name for name, _, _ in named]
    up, upstream = start_upstream("--facts")
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in commits}
    profiles: dict[str, dict[str, Any]] = {}
    try:
        for rep in range(args.repeat + (0 if args.no_profile else 1)):
            profiled = not args.no_profile and rep == args.repeat
            for commit, src, extra in named:
                db = work / "run.db"
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{db}{suffix}").unlink(missing_ok=True)
                shutil.copyfile(base, db)
                spy = work / f"spy-{len(profiles)}.txt" if profiled else None
                result = run_child(src, db, upstream, args, spy, extra)
                if spy is not None:
                    result["profile"] = spy_split(spy)
                print(commit, "profiled" if profiled else "", json.dumps({k: v for k, v in result.items() if k != "profile"}),
                      flush=True)
                (profiles.__setitem__(commit, result) if profiled else runs[commit].append(result))
    finally:
        stop([up])
    lines = report(commits, runs, profiles, args)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def report(commits: list[str], runs: dict[str, list[dict[str, Any]]], profiles: dict[str, dict[str, Any]],
           args: argparse.Namespace) -> list[str]:
    first = statistics.median(r["cpu_ms"] for r in runs[commits[0]])
    lines = [f"# Learner CPU per exchange (`learning_cpu.py`, {time.strftime('%Y-%m-%d %H:%M')})", "",
             f"{args.scope_size:,} real-text memories in the scope, {args.store_size:,} in the store; {args.exchanges} exchanges"
             f" measured after {args.warmup}, "
             + (f"arriving one by one at {args.rate:g}/s" if args.rate > 0 else f"{args.arrive} put in the outbox before each drain")
             + "; one fact per exchange"
             " (scripted memory LLM in its own process); process CPU time (user + system) of the learner over the drains;"
             f" {args.repeat} runs per source, interleaved, ratio of the medians against `{commits[0]}`.", "",
             "| source | CPU ms / exchange (each run) | median | vs first | wall ms / exchange | LLM calls / exchange | ADD / UPDATE / DELETE"
             " | load avg 1/5/15 (each run) |",
             "|---|---|---|---|---|---|---|---|"]
    for commit in commits:
        rs = runs[commit]
        median = statistics.median(r["cpu_ms"] for r in rs)
        each = ", ".join(f"{r['cpu_ms']:.2f}" for r in rs)
        wall = statistics.median(r["wall_ms"] for r in rs)
        ev = rs[-1]["events"]
        loads = "; ".join(r["load"] for r in rs)
        lines.append(f"| `{commit}` | {each} | **{median:.2f}** | {median / first:.3f}x | {wall:.2f} | {statistics.median(r['calls'] for r in rs):.3f}"
                     f" | {ev.get('ADD', 0)} / {ev.get('UPDATE', 0)} / {ev.get('DELETE', 0)} | {loads} |")
    if profiles:
        shown = [c for c in commits if c in profiles]
        lines += ["", "Where it goes (py-spy on the learner threads during a further, sampled run of each source: a stage's share"
                  " of the busy samples, as ms of that source's median CPU per exchange above; \"of which\" rows are inside the"
                  " stage above them):", "",
                  "| stage | " + " | ".join(f"`{c}`" for c in shown) + " |", "|---|" + "---|" * len(shown)]

        def cells(name: str) -> str:
            out = []
            for commit in shown:
                prof = profiles[commit]["profile"]
                share = prof[name] / prof["total"] if prof["total"] else 0.0
                out.append(f"{share * statistics.median(r['cpu_ms'] for r in runs[commit]):.2f} ({share:.0%})")
            return " | ".join(out)

        for stage, _ in STAGES:
            lines.append(f"| {stage} | {cells(stage)} |")
            lines += [f"| - of which {sub} | {cells(f'{parent}: {sub}')} |" for parent, sub, _ in SUBSTAGES if parent == stage]
        for commit in shown:
            prof = profiles[commit]["profile"]
            prof["the rest"] = prof["total"] - sum(prof[s] for s, _ in STAGES)
        lines.append(f"| the rest (the worker loop, payload reads, locks, idle claims) | {cells('the rest')} |")
        lines.append(f"| samples | {' | '.join(str(int(profiles[c]['profile']['total'])) for c in shown)} |")
    return lines


if __name__ == "__main__":
    main()
