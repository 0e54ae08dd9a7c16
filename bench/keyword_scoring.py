"""Keyword scoring: the SQLite store's FTS5 query (``keyword_index_mb: 0``, the scorer before)
against the in-process BM25 index (``memlane.stores.keyword_index``, the default), in one run,
searches interleaved in blocks of 25 queries (A B, B A, ...) so that the machine's noise falls on both alike.

Three cases:

- ``unselective`` (SYNTHETIC): 10k memories in one scope, each 10 words drawn from a 56-word
  product vocabulary, so each query term is held by 10-20% of the scope; queries are 6 words of
  the same vocabulary. The case of a user whose memories share their words.
- ``real``: a 10k-memory scope of real text (LoCoMo dev turns recombined, two per memory) in a
  30k-memory store; queries are other LoCoMo turns (chat messages).
- ``locomo``: LoCoMo dev evidence recall@10 (bench/locomo_retrieval.py's loading, one add per
  session), keyword only and the default ranking, with each scorer.

"first search of the scope": the first search in this process (the vector cache filled; the
index of a scope over ``keyword_index_inline_rows`` memories queued for the background build,
that search answered by the FTS5 query); ``build`` below times the index built inline.

``Memory.search`` times (wall and this thread's CPU) include embedding the query, as a chat's
recall does; numpy's BLAS runs one thread per call, as in ``memlane serve`` (server/cpu.py).

``--steady N``: before timing, each scorer's ``Memory`` also searches N other queries (none
timed), as a long-running server has: the texts' word and name caches and SQLite's page cache
then hold most of the scope, so the times are the steady state rather than a fresh process's.

    python bench/keyword_scoring.py [--cases unselective,real,locomo] [--queries 300] [--steady 600]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from memlane import Memory  # noqa: E402
from memlane.config import RetrievalConfig  # noqa: E402
from memlane.engine.identity import content_hash  # noqa: E402
from memlane.records import MemoryRecord, utc_now  # noqa: E402
from memlane.stores.base import Change  # noqa: E402

VOCABULARY = ("coffee espresso latte mug grinder bean roast filter kettle milk sugar cup brew pour machine order shipping "
              "return refund price discount bag pack gift box size colour black white blue green red small large medium "
              "organic fresh dark light arabica robusta decaf cold hot ice press drip capsule pod warranty review rating "
              "stock delivery store").split()
SCORERS = {"FTS5 query (before)": 0, "in-process index": 128}
#: queries searched by one scorer before the other takes the next block (alternating which goes
#: first): per-query alternation measured each scorer with the other's data in the CPU caches
BLOCK = 25


def pct(values: list[float], p: float) -> float:
    return sorted(values)[min(len(values) - 1, int(p * len(values)))]


def unselective_store(db: Path, size: int = 10_000, seed: int = 3) -> list[str]:
    """SYNTHETIC: ``size`` memories of 10 words from ``VOCABULARY`` in the scope ``shop``;
    returns queries of 6 words of it."""
    rng = random.Random(seed)
    with Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(db)}}}) as memory:
        texts = sorted({" ".join(rng.choices(VOCABULARY, k=10)) for _ in range(size)})
        vectors = memory._embed(texts)
        now = utc_now()
        memory.store.apply([Change("ADD", MemoryRecord(id=str(uuid.uuid4()), memory=t, hash=content_hash(t), user_id="shop",
                                                       created_at=now, updated_at=now), v) for t, v in zip(texts, vectors)])
    return [" ".join(rng.choices(VOCABULARY, k=6)) + "?" for _ in range(1000)]


def real_store(db: Path, scope_size: int = 10_000, store_size: int = 30_000) -> list[str]:
    from server_throughput import build_store
    from soak import locomo_turns

    turns = locomo_turns()
    build_store(db, {"provider": "model2vec"}, turns, scope_size, store_size)
    return random.Random(5).sample(turns, 1000)


def interleaved(db: Path, user: str, queries: list[str], warm: list[str] = ()) -> dict[str, dict[str, float]]:  # type: ignore[assignment]
    """``Memory.search`` with each scorer on the same file, query by query in alternation;
    ``warm``: other queries each searches first, untimed (the steady state)."""
    memories = {name: Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(db), "keyword_index_mb": mb}}})
                for name, mb in SCORERS.items()}
    wall: dict[str, list[float]] = {n: [] for n in memories}
    cpu: dict[str, list[float]] = {n: [] for n in memories}
    keyword: dict[str, list[float]] = {n: [] for n in memories}
    first: dict[str, float] = {}
    try:
        for name, m in memories.items():
            m.search("warm the embedder up", user_id="nobody-here")
            t0 = time.perf_counter()  # the scope's first search in this process: vector cache and index built
            m.search(queries[0], user_id=user)
            first[name] = (time.perf_counter() - t0) * 1000
            for q in [*queries[:20], *warm]:  # warm: vector cache, keyword index, word vectors (and --steady's)
                m.search(q, user_id=user)
            indexes = getattr(m.store, "_keywords", None)
            while indexes is not None and any(e.building or e.version is None for e in list(indexes._entries.values())):
                time.sleep(0.01)  # a big scope's index is built in the background: time the built one
            m.search(queries[0], user_id=user)
        from memlane.records import Scope
        for start in range(0, len(queries), BLOCK):
            block = queries[start:start + BLOCK]
            order = list(memories.items()) if start // BLOCK % 2 == 0 else list(memories.items())[::-1]
            for name, m in order:
                for q in block:
                    c0, t0 = time.thread_time(), time.perf_counter()
                    m.search(q, user_id=user, limit=10)
                    wall[name].append((time.perf_counter() - t0) * 1000)
                    cpu[name].append((time.thread_time() - c0) * 1000)
                for q in block:
                    t0 = time.perf_counter()
                    m.store.keyword_candidates(Scope(user_id=user), None, q, m.config.retrieval.candidates)  # type: ignore[attr-defined]
                    keyword[name].append((time.perf_counter() - t0) * 1000)
        build: dict[str, float] = {}
        for name, m in memories.items():  # the scope's index built from its rows, inline
            store: Any = m.store
            if store._keywords is not None:
                from memlane.stores.keyword_index import ScopeKeywords

                t0 = time.perf_counter()
                store._rebuild(store._db, ScopeKeywords(store.options.context_weight), Scope(user_id=user), False)
                build[name] = (time.perf_counter() - t0) * 1000
    finally:
        for m in memories.values():
            m.close()
    return {n: {"first": first[n], "build": build.get(n, float("nan")), "p50": statistics.median(wall[n]), "p95": pct(wall[n], 0.95), "cpu_p50": statistics.median(cpu[n]),
                "kw_p50": statistics.median(keyword[n]), "kw_p95": pct(keyword[n], 0.95)} for n in memories}


def latency_table(title: str, rows: dict[str, dict[str, float]]) -> list[str]:
    before = rows["FTS5 query (before)"]
    lines = [f"**{title}**", "", "| keyword scorer | search p50 ms | p95 ms | CPU p50 ms | keyword part p50 ms | p95 ms | p50 vs before | p95 vs before | first search of the scope ms | index build ms |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['p50']:.2f} | {r['p95']:.2f} | {r['cpu_p50']:.2f} | {r['kw_p50']:.2f} | {r['kw_p95']:.2f} | "
                     f"{r['p50'] / before['p50']:.2f}x | {r['p95'] / before['p95']:.2f}x | {r['first']:.0f} | {r['build']:.0f} |")
    return lines + [""]


def locomo() -> dict[str, dict[str, float]]:
    from locomo_retrieval import DEFAULT_DATA, evaluate, load_locomo

    samples = json.loads(Path(DEFAULT_DATA).read_text())
    out: dict[str, dict[str, float]] = {}
    for name, mb in SCORERS.items():
        db = Path(tempfile.mkdtemp(prefix="memlane-kw-locomo-")) / "locomo.db"
        with Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(db), "keyword_index_mb": mb}}}) as memory:
            questions, _, _, _ = load_locomo(memory, samples)

            def retrieve(q: dict[str, Any], k: int) -> list[str]:
                return [h["metadata"].get("dia_id") for h in memory.search(q["question"], user_id=q["sample"], limit=k)["results"]]

            for variant, settings in (("keyword only", RetrievalConfig(keyword_weight=1.0, speaker_bonus=0, time_bonus=0, alignment_weight=0)),
                                      ("default", RetrievalConfig())):
                memory.config.retrieval = settings
                result = evaluate(questions, retrieve, (5, 10))
                out[f"{name} | {variant}"] = result
                print(name, variant, {k: round(v, 4) for k, v in result.items()}, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", default="unselective,real,locomo")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--steady", type=int, default=0, help="other queries each scorer searches untimed first (the steady state)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "keyword_scoring.md"))
    args = parser.parse_args()
    from memlane.server.cpu import one_blas_thread

    one_blas_thread()
    cases = args.cases.split(",")
    work = Path(tempfile.mkdtemp(prefix="memlane-kw-"))
    lines: list[str] = []
    runs: list[tuple[str, Callable[[], list[str]], str]] = []
    if "unselective" in cases:
        runs.append(("unselective", lambda: unselective_store(work / "unselective.db"), "shop"))
    if "real" in cases:
        runs.append(("real", lambda: real_store(work / "real.db"), "alice"))
    for case, build, user in runs:
        started = time.perf_counter()
        built = build()
        queries, warm = built[: args.queries], built[args.queries: args.queries + args.steady]
        print(case, f"built in {time.perf_counter() - started:.0f}s", flush=True)
        rows = interleaved(work / f"{case}.db", user, queries, warm)
        title = ("SYNTHETIC unselective store: 10k memories of 10 words from a 56-word vocabulary in one scope (each query term in"
                 " 10-20% of it), queries of 6 of those words" if case == "unselective" else
                 "Real text: 10k-memory scope (LoCoMo dev turns recombined) in a 30k store, LoCoMo turns as queries")
        lines += latency_table(f"{title}; {len(queries)} queries, scorers interleaved"
                               + (f"; steady state: {len(warm)} other queries searched first" if warm else ""), rows)
        print("\n".join(lines[-5:]), flush=True)
    if "locomo" in cases:
        results = locomo()
        lines += ["**LoCoMo dev evidence recall (one add per session)**", "",
                  "| keyword scorer | ranking | all@5 | all@10 | multi-hop@10 | temporal@10 | open-domain@10 | single-hop@10 |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, r in results.items():
            lines.append(f"| {name} | {r['all@5']:.3f} | {r['all@10']:.3f} | {r['c1@10']:.3f} | {r['c2@10']:.3f} | {r['c3@10']:.3f} | {r['c4@10']:.3f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
