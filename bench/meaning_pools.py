"""Capture each benchmark question's ranked candidate pool, as the default search ranks it, for
offline re-scoring experiments (``meaning_rescore.py``) and the LoCoMo misses listing.

A search hands its boosted pool (the fused top 30 with every bonus and term alignment applied,
exactly what a configured reranker would receive) to a capturing stand-in for the reranker,
which keeps it and changes nothing. So a re-score measured on these pools is what the same
re-score would give inside ``Recall``, without a second implementation of the ranking.

    python bench/meaning_pools.py [--out /tmp/meaning/pools.pkl]
    python bench/meaning_pools.py --expand /tmp/meaning/splade.pkl --out /tmp/meaning/pools_exp10.pkl
    python bench/meaning_pools.py --keys-from /tmp/meaning/ctxm2.pkl --out /tmp/meaning/pools_ctxm2.pkl
(the caches and key tables come from ``meaning_signals.py``)

Pools: LoCoMo dev in both storings (limit 10: a pool of 30), MemoryBank dev (limit 30: 90).
Each entry: question fields, and ``pool``: [(score, text, label, role, session)] best first,
plus ``deep``: the labels of the default search's first 100 hits (where a missed turn ranks).
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Hashable, Mapping

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import locomo_retrieval as locomo  # noqa: E402
import memorybank_retrieval as mb  # noqa: E402

from memlane import Memory  # noqa: E402
from memlane.config import RetrievalConfig  # noqa: E402
from memlane.engine.ranking import Ranked  # noqa: E402
from memlane.records import MemoryRecord  # noqa: E402


class Capture:
    """Stands in for ``Reranking``: keeps the pool it is handed, returns it unchanged."""

    def __init__(self, top_n: int) -> None:
        self.top_n = top_n
        self.last: list[tuple[Ranked, MemoryRecord | None]] = []

    def window(self, limit: int) -> int:
        return max(self.top_n, limit)

    def apply(self, query: str, ranked: list[Ranked], records: Mapping[Hashable, MemoryRecord], limit: int) -> list[Ranked]:
        self.last = [(r, records.get(r.key)) for r in ranked]
        return ranked


def pool_of(capture: Capture, label_key: str) -> list[tuple[float, str, str, str, str]]:
    out = []
    for r, record in capture.last:
        if record is None:
            continue
        md = record.metadata
        out.append((r.score, record.memory, str(md.get(label_key)), str(md.get("role") or "user"), str(md.get("session_date") or record.created_at)))
    return out


def capture_memory(path: Path, top_n: int) -> tuple[Memory, Capture]:
    memory = Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(path)}}, "embedder": {"provider": "model2vec"}})
    capture = Capture(top_n)
    memory._recall.reranking = capture  # noqa: SLF001 - a bench's probe, not an API
    memory.config.retrieval = RetrievalConfig()
    return memory, capture


def expanding(memory: Memory, keys: Callable[[str], list[str]]) -> None:
    """Make ``memory.add`` give each message ``metadata.search_keys`` from ``keys(content)``:
    write-time document expansion through the keyword index's own search-key path."""
    add = memory.add

    def add_with_keys(messages: Any, **kwargs: Any) -> Any:
        if isinstance(messages, list):
            messages = [{**m, "metadata": {**(m.get("metadata") or {}), "search_keys": keys(m["content"])}} for m in messages]
        return add(messages, **kwargs)

    memory.add = add_with_keys  # type: ignore[method-assign]


def splade_keys(cache_path: str, top: int, floor: float, model: str) -> Callable[[str], list[str]]:
    """Expansion terms of a text: its ``top`` heaviest SPLADE terms of weight >= ``floor`` that
    are whole words (no ``##`` piece), not stop words and not already in the text."""
    from tokenizers import Tokenizer

    from memlane.query.keywords import STOPWORDS

    cache = pickle.loads(Path(cache_path).read_bytes())["doc"]
    tokenizer = Tokenizer.from_file(str(Path(model) / "tokenizer.json"))

    def keys(text: str) -> list[str]:
        vector = cache.get(text, {})
        present = set(re.findall(r"[a-z]+", text.lower()))
        out = []
        for term, weight in sorted(vector.items(), key=lambda kv: -kv[1]):
            word = tokenizer.id_to_token(term)
            if weight < floor or len(out) >= top:
                break
            if word.isalpha() and len(word) > 2 and word not in STOPWORDS and word not in present:
                out.append(word)
        return out
    return keys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="/tmp/meaning/pools.pkl")
    parser.add_argument("--expand", default=None, help="a SPLADE cache (meaning_signals.py encode's): index each text's expansion terms as search keys")
    parser.add_argument("--expand-top", type=int, default=10)
    parser.add_argument("--expand-floor", type=float, default=0.5)
    parser.add_argument("--model", default="/tmp/meaning/cq/cognition/model", help="the SPLADE model folder (its tokenizer)")
    parser.add_argument("--keys-from", default=None, help="a pickle {text: [search keys]} to index with each text instead")
    args = parser.parse_args()
    keys = splade_keys(args.expand, args.expand_top, args.expand_floor, args.model) if args.expand else None
    if args.keys_from:
        table = pickle.loads(Path(args.keys_from).read_bytes())
        keys = lambda text: table.get(text, [])  # noqa: E731
    pools: dict[str, list[dict[str, Any]]] = {}
    samples = json.loads(locomo.DEFAULT_DATA.read_text())
    for mode in ("named", "bare"):
        workdir = Path(tempfile.mkdtemp(prefix="memlane-pools-"))
        memory, capture = capture_memory(workdir / "l.db", 30)
        if keys is not None:
            expanding(memory, keys)
        questions, _, _, _ = locomo.load_locomo(memory, samples, bare=mode == "bare")
        entries = []
        for q in questions:
            memory.search(q["question"], user_id=q["sample"], limit=10)
            pool = pool_of(capture, "dia_id")
            capture.top_n = 0
            deep = [h["metadata"].get("dia_id") for h in memory.search(q["question"], user_id=q["sample"], limit=100)["results"]]
            capture.top_n = 30
            entries.append({**q, "pool": pool, "deep": deep})
        pools[f"locomo-{mode}"] = entries
        memory.close()
        print(mode, len(entries), flush=True)
    history = json.loads((mb.DATA / "memorybank_dev.json").read_text())
    qs = mb.questions(json.loads((mb.DATA / "memorybank_dev_labels.json").read_text()))
    workdir = Path(tempfile.mkdtemp(prefix="memlane-pools-"))
    memory, capture = capture_memory(workdir / "m.db", 30)
    if keys is not None:
        expanding(memory, keys)
    mb.load(memory, history)
    entries = []
    for i, q in enumerate(qs):
        memory.search(q["question"], user_id=q["user"], limit=mb.SEARCH_LIMIT)
        entries.append({**q, "index": i, "pool": pool_of(capture, "exchange")})
    pools["memorybank"] = entries
    memory.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "wb") as f:
        pickle.dump(pools, f)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
