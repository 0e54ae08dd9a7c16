"""MemoryBank recall of memlane's search: is the exchange that answers a probing question first?

MemoryBank (MIT) is chat-shaped: each exchange is a user's turn and the AI's reply, ten days per
user, and many probing questions ask what the AI said ("What painters did you recommend to
me?"), rarely in the exchange's words. Every exchange of the dev half is stored as its two
messages with ``infer=False``, the day as ``timestamp`` and ``{"exchange": "<day>#<index>"}`` as
each message's metadata; each user is a ``user_id`` scope. A question is answered at k when each
of its evidence groups (alternatives: one exchange from each is needed) has an exchange among the
first k distinct exchanges of ``search``. Rows: a plain BM25 floor over the exchanges' text, the
default configuration with the shipped static model and with MiniLM, and each retrieval feature
off; columns split by half (the even questions the role, day and name bonuses were tuned on,
the odd ones held out) and by where the answer is (the user's turn, the AI's reply, both).

    python bench/memorybank_retrieval.py [--out bench/results/memorybank_retrieval.md] [--embedders onnx,minilm]
        [--misses bench/results/memorybank_misses.md]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from locomo_retrieval import BM25  # noqa: E402

from memlane import Memory  # noqa: E402
from memlane.config import RetrievalConfig  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "memorybank"
KS = (1, 3, 5, 10)
#: memories asked for per question: two per exchange, so the first 10 exchanges are all there
SEARCH_LIMIT = 30


def exchange_id(day: str, index: int) -> str:
    return f"{day}#{index}"


def load(memory: Memory, history: dict[str, Any]) -> tuple[dict[str, list[tuple[str, str]]], float]:
    """Store every exchange as its two messages; return each user's exchanges (id, text) for BM25."""
    docs: dict[str, list[tuple[str, str]]] = {}
    started = time.perf_counter()
    for user, data in history.items():
        docs[user] = []
        for day, exchanges in sorted(data["history"].items()):
            for index, exchange in enumerate(exchanges):
                key = exchange_id(day, index)
                messages = [{"role": "user", "content": exchange["query"], "metadata": {"exchange": key}},
                            {"role": "assistant", "content": exchange["response"], "metadata": {"exchange": key}}]
                memory.add(messages, user_id=user, infer=False, timestamp=f"{day}T12:00:00+00:00")
                docs[user].append((key, f"{exchange['query']} {exchange['response']}"))
    return docs, time.perf_counter() - started


def questions(labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for label in labels:
        groups = [{exchange_id(day, index) for day, index in group} for group in label.get("evidence_groups") or []]
        if groups and all(groups):
            # the scope is the history's own key (" Linda", with its stray space)
            out.append({"user": label.get("mem_key", label["user"]), "question": label["question"], "groups": groups, "where": label.get("where", "?")})
    return out


def answered_at(found: list[str], groups: list[set[str]], k: int) -> bool:
    first = set(found[:k])
    return all(group & first for group in groups)


def evaluate(qs: list[dict[str, Any]], retrieve: Callable[[dict[str, Any]], list[str]]) -> dict[str, Any]:
    """R@k over all questions, by where the answer is, and on each half: ``tuned`` (the even
    questions, in the labels' order, which the new features' weights were chosen on) and
    ``held`` (the odd ones, reported apart so that over-fitting shows)."""
    hits: dict[tuple[str, int], list[bool]] = defaultdict(list)
    times = []
    for i, q in enumerate(qs):
        started = time.perf_counter()
        found = list(dict.fromkeys(retrieve(q)))  # distinct exchanges, in rank order
        times.append((time.perf_counter() - started) * 1000)
        for k in KS:
            for part in ("all", q["where"], "tuned" if i % 2 == 0 else "held"):
                hits[(part, k)].append(answered_at(found, q["groups"], k))
    result: dict[str, Any] = {"ms_p50": statistics.median(times), "ms_p95": sorted(times)[int(0.95 * (len(times) - 1))]}
    for (where, k), values in hits.items():
        result[f"{where}@{k}"] = sum(values) / len(values)
        result[f"n_{where}"] = len(values)
    return result


def memlane_retrieve(memory: Memory) -> Callable[[dict[str, Any]], list[str]]:
    def retrieve(q: dict[str, Any]) -> list[str]:
        hits = memory.search(q["question"], user_id=q["user"], limit=SEARCH_LIMIT)["results"]
        return [h["metadata"]["exchange"] for h in hits]
    return retrieve


NO_BONUS = {"speaker_bonus": 0, "time_bonus": 0, "alignment_weight": 0, "role_bonus": 0, "day_bonus": 0, "name_bonus": 0, "stance_bonus": 0}
VARIANTS: list[tuple[str, RetrievalConfig]] = [
    ("keyword only", RetrievalConfig(keyword_weight=1.0, **NO_BONUS)),
    ("dense only", RetrievalConfig(keyword_weight=0.0, **NO_BONUS)),
    ("without role, day and name bonuses (the previous default)", RetrievalConfig(role_bonus=0, day_bonus=0, name_bonus=0)),
    ("default without the role bonus", RetrievalConfig(role_bonus=0)),
    ("default without the day bonus", RetrievalConfig(day_bonus=0)),
    ("default without the name bonus", RetrievalConfig(name_bonus=0)),
    ("default without term alignment", RetrievalConfig(alignment_weight=0)),
    ("default without the time bonus", RetrievalConfig(time_bonus=0)),
    ("default with role bonus 0.1", RetrievalConfig(role_bonus=0.1)),
    ("default with role bonus 0.3", RetrievalConfig(role_bonus=0.3)),
    ("default with day bonus 0.2", RetrievalConfig(day_bonus=0.2)),
    ("default with name bonus 0.1", RetrievalConfig(name_bonus=0.1)),
    ("default with name bonus 0.3", RetrievalConfig(name_bonus=0.3)),
    ("**default** (role 0.2, day 0.4, name 0.2 on the previous default)", RetrievalConfig()),
]


def misses(memory: Memory, history: dict[str, Any], qs: list[dict[str, Any]]) -> str:
    """Each question not answered at rank 1 with the memory's current settings: the first
    three hits (exchange, role, score, text) and the answering exchanges' two turns, to read
    why (the classification in bench/README.md was made from this listing)."""
    turns = {(user, exchange_id(day, i)): e for user, data in history.items()
             for day, exchanges in data["history"].items() for i, e in enumerate(exchanges)}
    out = []
    for i, q in enumerate(qs):
        hits = memory.search(q["question"], user_id=q["user"], limit=SEARCH_LIMIT)["results"]
        found = list(dict.fromkeys(h["metadata"]["exchange"] for h in hits))
        if answered_at(found, q["groups"], 1):
            continue
        ranks = [next((r + 1 for r, e in enumerate(found) if e in group), None) for group in q["groups"]]
        out.append(f"### q{i} ({'tuned' if i % 2 == 0 else 'held'}) [{q['user'].strip()}] answer in the {q['where']}; "
                   f"rank of each evidence group {ranks}: {q['question']}")
        for h in hits[:3]:
            out.append(f"- hit {h['metadata']['exchange']} {h['metadata'].get('role')} {h['score']:.3f}: {h['memory'][:160]}")
        for group in q["groups"]:
            for key in sorted(group):
                e = turns[(q["user"], key)]
                out.append(f"- answer {key}: user: {e['query'][:160]} / assistant: {e['response'][:160]}")
    return "\n".join(out) + "\n"


def run(embedder: dict[str, Any], name: str, history: dict[str, Any], qs: list[dict[str, Any]],
        variants: list[tuple[str, RetrievalConfig]], misses_out: Path | None = None,
        ) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, list[tuple[str, str]]], str]:
    workdir = Path(tempfile.mkdtemp(prefix="memlane-memorybank-"))
    memory = Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(workdir / "mb.db")}}, "embedder": embedder})
    try:
        docs, load_s = load(memory, history)
        if misses_out is not None:
            for label, settings in (("previous default", RetrievalConfig(role_bonus=0, day_bonus=0, name_bonus=0)), ("default", RetrievalConfig())):
                memory.config.retrieval = settings
                with misses_out.open("a") as f:
                    f.write(f"## {name}, {label}: questions not answered at rank 1\n\n" + misses(memory, history, qs) + "\n")
        rows = []
        for label, settings in variants:
            memory.config.retrieval = settings
            rows.append((f"{name}: {label}", evaluate(qs, memlane_retrieve(memory))))
            print(rows[-1][0], {k: round(v, 3) for k, v in rows[-1][1].items()}, flush=True)
        return rows, docs, f"{name}: {sum(len(d) for d in docs.values())} exchanges stored in {load_s:.1f} s"
    finally:
        memory.close()


def table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    base = rows[0][1]
    wheres = [w for w in ("query", "response", "both") if f"{w}@1" in base]
    halves = [h for h in ("tuned", "held") if f"{h}@1" in base]
    head = ("| method | R@1 | R@3 | R@5 | R@10 | "
            + " | ".join(f"{h} half R@1 / R@5 (n={base['n_' + h]})" for h in halves) + " | "
            + " | ".join(f"{w} R@1 / R@5 (n={base['n_' + w]})" for w in wheres) + " | search p50 ms | p95 ms |")
    lines = [head, "|" + "---|" * (7 + len(halves) + len(wheres))]
    for name, r in rows:
        cells = [f"{r[f'all@{k}']:.3f}" for k in KS]
        cells[0] += f" ({r['all@1'] / base['all@1']:.2f}x)" if base["all@1"] else ""
        lines.append(f"| {name} | " + " | ".join(cells) + " | "
                     + " | ".join(f"{r[h + '@1']:.3f} / {r[h + '@5']:.3f}" for h in halves + wheres)
                     + f" | {r['ms_p50']:.1f} | {r['ms_p95']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "memorybank_retrieval.md"))
    parser.add_argument("--embedders", default="onnx,minilm",
                        help="besides the shipped static model: onnx (MiniLM int8, no torch), minilm (torch); comma-separated")
    parser.add_argument("--misses", default=None, help="also write each question not answered at rank 1 here (static model)")
    args = parser.parse_args()
    if args.misses:
        Path(args.misses).write_text("")
    history = json.loads((Path(args.data) / "memorybank_dev.json").read_text())
    qs = questions(json.loads((Path(args.data) / "memorybank_dev_labels.json").read_text()))
    rows, docs, note = run({"provider": "model2vec"}, "static", history, qs, VARIANTS, Path(args.misses) if args.misses else None)
    notes = [note]
    bm25 = {user: BM25([text for _, text in d]) for user, d in docs.items()}
    floor = evaluate(qs, lambda q: [docs[q["user"]][i][0] for i in bm25[q["user"]].top(q["question"], 10)])
    rows.insert(0, ("BM25 floor (plain BM25 over each exchange's two messages, this run)", floor))
    for name in filter(None, args.embedders.split(",")):
        provider, label = {"onnx": ("onnx", "MiniLM int8 ONNX"), "minilm": ("sentence_transformers", "MiniLM torch")}[name]
        more, _, note = run({"provider": provider}, label, history, qs, VARIANTS[-1:] + VARIANTS[2:3] + VARIANTS[1:2])
        rows += more
        notes.append(note)
    text = table(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"MemoryBank dev half: {len(qs)} questions with evidence; " + "; ".join(notes)
                   + ".\nR@k: every evidence group has an exchange among the first k distinct exchanges. R@1 ratios are"
                   " against the BM25 floor of this run. Search times include the query embedding.\n\n" + text + "\n")
    print(text)


if __name__ == "__main__":
    main()
