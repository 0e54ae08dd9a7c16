"""The stance bonus (memlane.query.stance) on the three recall-by-meaning sets, in one run.

Loads the paraphrase set, MemoryBank dev and LoCoMo dev (both storings: each turn's speaker as
``name`` with the session time as ``timestamp``, and the bare dated text) once each, with the
shipped static model, and searches them under each variant: the stance bonus off (the previous
default), at several weights, each direction alone (only questions asking for an aversion, or
only for a liking, get the bonus), and term alignment with the modal "must" treated as a
function word like "should" and "can" already are. Recall is deterministic; latencies are not.
Also times the stance reading itself (a question, and 30 candidates' texts cold and cached).

    python bench/stance_recall.py [--out bench/results/stance_recall.md]
    python bench/stance_recall.py --cost [--store 20000] [--out bench/results/stance_cost.md]

``--cost``: what the bonus costs a search instead: a 10k real-text scope (LoCoMo turns
recombined, as ``ranking_cost.py``) asked every stance question of the three sets plus as many
others (MemoryBank's and LoCoMo's), with the bonus off and on in alternation, in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import timeit
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import locomo_retrieval as locomo  # noqa: E402
import memorybank_retrieval as memorybank  # noqa: E402
import paraphrase_recall as paraphrase  # noqa: E402

import memlane.engine.alignment as alignment_module  # noqa: E402
import memlane.engine.recall as recall_module  # noqa: E402
from memlane import Memory  # noqa: E402
from memlane.config import RetrievalConfig  # noqa: E402
from memlane.query import stance as stance_module  # noqa: E402


@contextmanager
def only(direction: str | None) -> Iterator[None]:
    """Questions asking for the other stance read as asking for none (one direction alone)."""
    real = stance_module.asked_stance
    if direction is not None:
        recall_module.asked_stance = lambda q: (s if (s := real(q)) == direction else None)  # type: ignore[assignment]
    try:
        yield
    finally:
        recall_module.asked_stance = real


@contextmanager
def function_words(extra: frozenset[str]) -> Iterator[None]:
    """Term alignment with ``extra`` as stop words too (cached memory words are read again)."""
    real = alignment_module.STOPWORDS
    words = alignment_module.shipped_word_vectors()
    alignment_module.STOPWORDS = real | extra  # type: ignore[misc]
    if words is not None:
        words._texts.clear()
    try:
        yield
    finally:
        alignment_module.STOPWORDS = real  # type: ignore[misc]
        if words is not None:
            words._texts.clear()


MODALS = frozenset({"must", "might", "may", "shall", "ought"})
#: (label, settings, direction or None for both, extra alignment stop words)
VARIANTS: list[tuple[str, RetrievalConfig, str | None, frozenset[str]]] = [
    ("stance bonus off (the previous default)", RetrievalConfig(stance_bonus=0), None, frozenset()),
    ("stance bonus 0.05", RetrievalConfig(stance_bonus=0.05), None, frozenset()),
    ("**stance bonus 0.1** (the default)", RetrievalConfig(stance_bonus=0.1), None, frozenset()),
    ("stance bonus 0.2", RetrievalConfig(stance_bonus=0.2), None, frozenset()),
    ("stance bonus 0.1, aversion questions only", RetrievalConfig(stance_bonus=0.1), "aversion", frozenset()),
    ("stance bonus 0.1, liking questions only", RetrievalConfig(stance_bonus=0.1), "liking", frozenset()),
    ("stance off, alignment without modals (must, might, may, shall, ought)", RetrievalConfig(stance_bonus=0), None, MODALS),
    ("stance 0.1 and alignment without modals", RetrievalConfig(stance_bonus=0.1), None, MODALS),
]


def allergy_ranks(memory: Memory) -> str:
    out = []
    for q in ("Which foods must I avoid?", "what can't I eat?"):
        found = [h["memory"] for h in memory.search(q, user_id="ana3", limit=3)["results"]]
        out.append(str(found.index("I am allergic to cheese") + 1))
    return " / ".join(out)


def under(variant: tuple[str, RetrievalConfig, str | None, frozenset[str]], memory: Memory, measure: Callable[[], Any]) -> Any:
    _, settings, direction, extra = variant
    memory.config.retrieval = settings
    with only(direction), function_words(extra):
        return measure()


def cost(store_size: int, out: Path) -> None:
    import random
    import time

    from proxy_overhead import latency_table
    from server_throughput import build_store
    from soak import locomo_turns

    from memlane.query.stance import asked_stance

    data = ROOT.parent / "shared" / "data"
    asked = [q["question"] for q in json.loads((data / "memorybank" / "memorybank_dev_labels.json").read_text())]
    asked += [qa["question"] for sample in json.loads(locomo.DEFAULT_DATA.read_text()) for qa in sample["qa"]]
    asked += [q["q"] for scope in json.loads(paraphrase.DATA.read_text())["scopes"] for q in scope["questions"]]
    stance = [q for q in asked if asked_stance(q)]
    rng = random.Random(3)
    picked = stance + rng.sample([q for q in asked if not asked_stance(q)], len(stance))
    rng.shuffle(picked)
    db = Path(tempfile.mkdtemp(prefix="memlane-stance-cost-")) / "store.db"
    load_s = build_store(db, {"provider": "model2vec"}, locomo_turns(), 10_000, store_size)
    settings = {"stance bonus off": RetrievalConfig(stance_bonus=0), "stance bonus 0.1 (the default)": RetrievalConfig()}
    times: dict[str, list[float]] = {name: [] for name in settings}
    with Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(db)}}}) as memory:
        for config in settings.values():  # warm both paths
            memory.config.retrieval = config
            memory.search(picked[0], user_id="alice")
        for i, question in enumerate(picked):
            pairs = list(settings.items())
            for name, config in pairs if i % 2 == 0 else pairs[::-1]:
                memory.config.retrieval = config
                started = time.perf_counter()
                memory.search(question, user_id="alice", limit=10)
                times[name].append((time.perf_counter() - started) * 1000)
    table = latency_table(times, "settings", "off")
    out.write_text(f"Search in a 10k-memory scope of a {store_size // 1000}k SQLite store (LoCoMo turns recombined, static embedder;"
                   f" built in {load_s:.0f} s); {len(picked)} questions: the {len(stance)} of MemoryBank, LoCoMo and the paraphrase"
                   f" set that ask for a stance, and as many that do not; each searched with both settings in alternation"
                   f" (which goes first alternates too), limit 10.\n\n{table}\n")
    print(table)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=None, help="default: bench/results/stance_recall.md (stance_cost.md with --cost)")
    parser.add_argument("--cost", action="store_true", help="measure what the bonus costs a search instead")
    parser.add_argument("--store", type=int, default=20_000, help="with --cost: memories in the store (10k of them in the scope)")
    args = parser.parse_args()
    if args.cost:
        cost(args.store, Path(args.out or ROOT / "bench" / "results" / "stance_cost.md"))
        return
    args.out = args.out or str(ROOT / "bench" / "results" / "stance_recall.md")
    results: dict[str, dict[str, Any]] = {v[0]: {} for v in VARIANTS}

    def store() -> Memory:
        return Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(Path(tempfile.mkdtemp(prefix="memlane-stance-")) / "s.db")}}})

    # paraphrase set, and the three-memory scope
    data = json.loads(paraphrase.DATA.read_text())
    memory = store()
    paraphrase.load(memory, data)
    memory.add(["I am allergic to cheese", "I live in San Francisco", "My favourite cuisine is Indian"], user_id="ana3", infer=False)
    for v in VARIANTS:
        r1, p50, misses = under(v, memory, lambda: paraphrase.recall_at_1(memory, data))
        results[v[0]].update(para=r1, para_misses=misses, allergy=under(v, memory, lambda: allergy_ranks(memory)))
        print(v[0], "paraphrase", r1, results[v[0]]["allergy"], misses, flush=True)
    memory.close()

    # MemoryBank dev
    history = json.loads((memorybank.DATA / "memorybank_dev.json").read_text())
    qs = memorybank.questions(json.loads((memorybank.DATA / "memorybank_dev_labels.json").read_text()))
    memory = store()
    memorybank.load(memory, history)
    for v in VARIANTS:
        r = under(v, memory, lambda: memorybank.evaluate(qs, memorybank.memlane_retrieve(memory)))
        results[v[0]]["mb"] = r
        print(v[0], "MemoryBank", {k: round(x, 3) for k, x in r.items() if "@1" in k or "@5" in k}, flush=True)
    memory.close()

    # LoCoMo dev, both storings
    samples = json.loads(locomo.DEFAULT_DATA.read_text())
    for mode, bare in (("named", False), ("bare", True)):
        memory = store()
        questions, _, _, _ = locomo.load_locomo(memory, samples, bare=bare)
        for v in VARIANTS:
            (_, r), = under(v, memory, lambda: locomo.run_variants(memory, questions, [(v[0], v[1])], (10,)))
            results[v[0]][mode] = r
        memory.close()

    # what the reading costs
    from memlane.query.stance import _cache, asked_stance, stances_in
    texts = [f"[8 May, 2023] Caroline: turn {i} where I tell you that I love hiking and can't eat gluten, more or less" for i in range(30)]
    q_us = min(timeit.repeat(lambda: asked_stance("Which foods must I avoid?"), number=1000, repeat=5)) * 1000
    def cold() -> None:
        _cache.clear()
        for t in texts:
            stances_in(t)
    cold_us = min(timeit.repeat(cold, number=100, repeat=5)) * 10_000
    warm_us = min(timeit.repeat(lambda: [stances_in(t) for t in texts], number=1000, repeat=5)) * 1000

    lines = ["| variant | allergy rank (avoid / can't eat) | paraphrase R@1 | MemoryBank R@1 | R@5 | tuned R@1 / R@5 | held R@1 / R@5 "
             "| LoCoMo name + ts @10 | multi-hop | open-domain | LoCoMo bare @10 | multi-hop | open-domain |", "|" + "---|" * 13]
    for label, r in results.items():
        mb, nm, br = r["mb"], r["named"], r["bare"]
        lines.append(f"| {label} | {r['allergy']} | {r['para']:.3f} | {mb['all@1']:.3f} | {mb['all@5']:.3f} | {mb['tuned@1']:.3f} / {mb['tuned@5']:.3f} "
                     f"| {mb['held@1']:.3f} / {mb['held@5']:.3f} | {nm['all@10']:.3f} | {nm['c1@10']:.3f} | {nm['c3@10']:.3f} "
                     f"| {br['all@10']:.3f} | {br['c1@10']:.3f} | {br['c3@10']:.3f} |")
    misses = "\n".join(f"- {label}: " + "; ".join(r["para_misses"]) for label, r in results.items())
    text = ("Stance bonus, static model, one run (`bench/stance_recall.py`). Allergy rank: the issue's three-memory scope.\n\n"
            + "\n".join(lines) + f"\n\nParaphrase misses:\n{misses}\n\nCost of the reading: a question {q_us:.1f} us; 30 candidates "
            f"{cold_us:.0f} us the first time their texts are seen, {warm_us:.1f} us cached.\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
