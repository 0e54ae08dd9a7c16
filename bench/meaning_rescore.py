"""Offline re-scoring of the default search's candidate pools with a semantic signal: what a
learned sparse model (SPLADE-tiny) or a stronger dense encoder (multilingual-e5-small) adds when
``w x signal`` joins the boosted score of each of the top 30 (issue 23, step 2).

Reads the pools of ``meaning_pools.py`` and a cache of vectors per text (``--signals``: pickles
of ``{"doc": {text: vector}, "query": {question: vector}}``; a dict vector is SPLADE, an array
e5). The signal of a candidate is its dot product with the question, spread over [0, 1] within the
pool (min-max), divided by the best in the pool (so that 1 is this question's best match, like
the keyword signal) or raw (e5's cosine as it is; its cosines crowd into 0.7-0.9). Every row reports both LoCoMo storings and MemoryBank, each split in halves
(even questions: where a weight may be chosen; odd: held out), so a weight that only fits the
data it was chosen on shows.

    python bench/meaning_rescore.py --signals splade=/tmp/meaning/splade.pkl,e5=/tmp/meaning/e5.pkl
    python bench/meaning_rescore.py --compare "wider context=/tmp/meaning/pools_ctx2.pkl;..."  (pools of other
        storings, from meaning_pools.py --expand / --keys-from, side by side with the default's, no re-score)
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np

Signal = Callable[[dict[str, Any], list[tuple[float, str, str, str, str]]], np.ndarray]


def locomo_recall(entries: list[dict[str, Any]], order: Callable[[dict[str, Any]], list[str]]) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for i, q in enumerate(entries):
        top = order(q)[:10]
        v = len(set(top) & set(q["evidence"])) / len(q["evidence"])
        for part in ("all", f"c{q['category']}", "even" if i % 2 == 0 else "odd"):
            sums.setdefault(part, []).append(v)
    return {k: sum(v) / len(v) for k, v in sums.items()}


def memorybank_r(entries: list[dict[str, Any]], order: Callable[[dict[str, Any]], list[str]]) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for q in entries:
        found = list(dict.fromkeys(order(q)))
        for k in (1, 5):
            ok = float(all(g & set(found[:k]) for g in q["groups"]))
            for part in ("all", "even" if q["index"] % 2 == 0 else "odd"):
                sums.setdefault(f"{part}@{k}", []).append(ok)
    return {k: sum(v) / len(v) for k, v in sums.items()}


def sparse_dot(q: dict[int, float], d: dict[int, float]) -> float:
    if len(q) > len(d):
        q, d = d, q
    return sum(w * d.get(t, 0.0) for t, w in q.items())


def make_signal(cache: dict[str, Any], normalise: bool | str) -> Signal:
    def signal(q: dict[str, Any], pool: list[tuple[float, str, str, str, str]]) -> np.ndarray:
        qv = cache["query"][q["question"]]
        if isinstance(qv, dict):
            s = np.array([sparse_dot(qv, cache["doc"][text]) for _, text, _, _, _ in pool])
        else:
            s = np.array([float(np.dot(qv, cache["doc"][text])) for _, text, _, _, _ in pool])
        if normalise == "minmax":  # e5's cosines crowd into 0.7-0.9: spread the pool over [0, 1]
            low, high = (s.min(), s.max()) if len(s) else (0.0, 0.0)
            s = (s - low) / (high - low) if high > low else s * 0
        elif normalise:
            best = s.max() if len(s) else 0.0
            s = s / best if best > 0 else s * 0
        return s
    return signal


def rescored(signals: list[tuple[float, Signal]], head: int = 30) -> Callable[[dict[str, Any]], list[str]]:
    def order(q: dict[str, Any]) -> list[str]:
        pool = q["pool"][:head]
        score = np.array([p[0] for p in pool], dtype=float)
        for w, sig in signals:
            if w:
                score = score + w * sig(q, pool)
        idx = sorted(range(len(pool)), key=lambda i: (-score[i], i))
        return [pool[i][2] for i in idx] + [p[2] for p in q["pool"][head:]]
    return order


def pool_feedback(vectors: dict[str, np.ndarray], k: int) -> Signal:
    """Pseudo-relevance feedback inside the pool: a candidate's mean cosine to the first ``k``
    (itself left out), with the shipped static model's vectors."""
    def signal(q: dict[str, Any], pool: list[tuple[float, str, str, str, str]]) -> np.ndarray:
        m = np.stack([vectors[text] for _, text, _, _, _ in pool])
        s = m @ m[:k].T
        for j in range(min(k, len(pool))):
            s[j, j] = np.nan
        return np.nanmean(s, 1)
    return signal


def session_diverse(penalty: float) -> Callable[[dict[str, Any]], list[str]]:
    """Greedy re-order of the pool: each pick loses ``penalty`` per hit already picked from its
    session (LoCoMo's ``D<session>``; MemoryBank's day)."""
    def session(label: str) -> str:
        return label.split(":")[0] if ":" in label else label.split("#")[0]

    def order(q: dict[str, Any]) -> list[str]:
        pool, picked, counts = list(q["pool"][:30]), [], {}
        while pool:
            best = max(range(len(pool)), key=lambda i: (pool[i][0] - penalty * counts.get(session(pool[i][2]), 0), -i))
            chosen = pool.pop(best)
            picked.append(chosen[2])
            counts[session(chosen[2])] = counts.get(session(chosen[2]), 0) + 1
        return picked + [p[2] for p in q["pool"][30:]]
    return order


def extras(pools: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Rows that need no model beyond the shipped one: pool feedback and session diversity."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from memlane.embedders.static import StaticEmbedder

    texts = sorted({p[1] for entries in pools.values() for q in entries for p in q["pool"]})
    vectors = dict(zip(texts, StaticEmbedder().embed(texts)))
    lines = []
    for k in (1, 3, 5):
        for w in (0.05, 0.1, 0.2):
            lines.append(row(f"pool feedback: + w x mean static cosine to the top {k}, w {w}", pools, rescored([(w, pool_feedback(vectors, k))])))
    for penalty in (0.02, 0.05, 0.1, 0.2):
        lines.append(row(f"session diversity: - {penalty} per hit already picked from the same session (MemoryBank: day)", pools, session_diverse(penalty)))
    return lines


def row(name: str, pools: dict[str, list[dict[str, Any]]], order: Callable[[dict[str, Any]], list[str]]) -> str:
    cells = []
    for storing in ("locomo-named", "locomo-bare"):
        r = locomo_recall(pools[storing], order)
        cells.append(f"{r['all']:.3f} ({r['even']:.3f} / {r['odd']:.3f}) | {r['c1']:.3f} | {r['c3']:.3f}")
    m = memorybank_r(pools["memorybank"], order)
    cells.append(f"{m['all@1']:.3f} ({m['even@1']:.3f} / {m['odd@1']:.3f}) | {m['all@5']:.3f}")
    return f"| {name} | " + " | ".join(cells) + " |"


HEADER = ("| re-score of the boosted top 30 | LoCoMo name+timestamp @10 (even / odd) | multi-hop | open-domain "
          "| LoCoMo bare @10 (even / odd) | multi-hop | open-domain | MemoryBank R@1 (even / odd) | R@5 |\n"
          "|---|---|---|---|---|---|---|---|---|")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pools", default="/tmp/meaning/pools.pkl")
    parser.add_argument("--signals", default="splade=/tmp/meaning/splade.pkl")
    parser.add_argument("--weights", default="0.05,0.1,0.2,0.3,0.5")
    parser.add_argument("--out", default=None)
    parser.add_argument("--extras", action="store_true", help="also pool feedback and session diversity rows")
    parser.add_argument("--compare", default=None, help="'label=pools.pkl;...': rows for other captured pools, no re-score")
    args = parser.parse_args()
    pools = pickle.loads(Path(args.pools).read_bytes())
    if args.compare:
        lines = [HEADER.replace("re-score of the boosted top 30", "what is indexed with each memory"), row("the default", pools, rescored([]))]
        for item in args.compare.split(";"):
            label, path = item.rsplit("=", 1)
            lines.append(row(label, pickle.loads(Path(path).read_bytes()), rescored([])))
        text = "\n".join(lines) + "\n"
        if args.out:
            Path(args.out).write_text(text)
        print(text)
        return
    caches = {name: pickle.loads(Path(path).read_bytes()) for name, path in (s.split("=") for s in args.signals.split(","))}
    weights = [float(w) for w in args.weights.split(",")]
    lines = [HEADER, row("none (the default, as captured)", pools, rescored([]))]
    for name, cache in caches.items():
        for normalise in ("minmax", True, False):
            sig = make_signal(cache, normalise)
            label = {"minmax": "min-max in the pool", True: "/ pool best", False: "raw"}[normalise]
            for w in weights:
                lines.append(row(f"{name} {label}, w {w}", pools, rescored([(w, sig)])))
                print(lines[-1], flush=True)
    if len(caches) > 1:
        sigs = [make_signal(c, "minmax") for c in caches.values()]
        for w in weights:
            lines.append(row(f"{' + '.join(caches)} min-max in the pool, w {w} each", pools, rescored([(w, s) for s in sigs])))
            print(lines[-1], flush=True)
    if args.extras:
        lines += extras(pools)
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
