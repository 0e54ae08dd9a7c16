"""LoCoMo evidence recall of memlane's search, next to a BM25 baseline measured in the same run.

Every turn of the five dev conversations is stored with ``infer=False`` (one ``add`` per
session, so each turn's neighbours reach the keyword index), as
"[session date] Speaker: text (image: caption)", with metadata ``dia_id`` and ``session_date``;
each conversation is its own ``user_id`` scope. Two storings: each turn with its speaker as the
message's ``name`` and the session's time as ``timestamp``, and the bare dated text alone (issue
23 measured both on conversations we do not have). Every category 1-4 question is asked with
``search(limit=k)``; evidence recall@k is the share of a question's evidence turns among the
top k, averaged over questions. Categories follow the dataset's own code: 1 multi-hop,
2 temporal, 3 open-domain, 4 single-hop.

    python bench/locomo_retrieval.py [--data ../shared/data/locomo/locomo_dev.json] [--out bench/results/locomo.md]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memlane import Memory  # noqa: E402
from memlane.config import RetrievalConfig  # noqa: E402
from memlane.query.keywords import STOPWORDS  # noqa: E402

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "locomo" / "locomo_dev.json"


def turn_text(date: str, turn: dict[str, Any]) -> str:
    text = f"[{date}] {turn['speaker']}: {turn['text']}"
    if turn.get("blip_caption"):
        text += f" (image: {turn['blip_caption']})"
    return text


def sessions(sample: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    conv = sample["conversation"]
    keys = sorted((k for k in conv if re.fullmatch(r"session_\d+", k)), key=lambda k: int(k.split("_")[1]))
    return [(conv.get(f"{k}_date_time", ""), conv[k]) for k in keys]


def evidence_ids(raw: list[str], known: set[str]) -> list[str]:
    out = []
    for item in raw:
        for part in re.split(r"[;,\s]+", item):
            m = re.fullmatch(r"D:?(\d+):0*(\d+)", part.strip())
            if m and f"D{m[1]}:{m[2]}" in known:
                out.append(f"D{m[1]}:{m[2]}")
    return list(dict.fromkeys(out))


class BM25:
    """Plain Okapi BM25 (k1 1.2, b 0.75, stop words removed): the baseline the issue names."""

    def __init__(self, docs: list[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.tf = [Counter(self.tokens(d)) for d in docs]
        self.len = [sum(t.values()) for t in self.tf]
        self.avg = sum(self.len) / max(len(self.len), 1)
        df = Counter(w for t in self.tf for w in t)
        n = len(docs)
        self.idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) for w, f in df.items()}

    @staticmethod
    def tokens(text: str) -> list[str]:
        return [w for w in re.findall(r"\w+", text.lower()) if w not in STOPWORDS]

    def top(self, query: str, k: int) -> list[int]:
        q = set(self.tokens(query))
        scores = []
        for i, tf in enumerate(self.tf):
            s = 0.0
            for w in q:
                f = tf.get(w)
                if f:
                    s += self.idf[w] * f * (self.k1 + 1) / (f + self.k1 * (1 - self.b + self.b * self.len[i] / self.avg))
            if s > 0:
                scores.append((s, i))
        scores.sort(reverse=True)
        return [i for _, i in scores[:k]]


def recall(found: list[str], evidence: list[str]) -> float:
    return len(set(found) & set(evidence)) / len(evidence)


def evaluate(questions: list[dict[str, Any]], retrieve: Callable[[dict[str, Any], int], list[str]], ks: tuple[int, ...]) -> dict[str, Any]:
    per: dict[tuple[int, int], list[float]] = defaultdict(list)
    times = []
    for q in questions:
        t0 = time.perf_counter()
        found = retrieve(q, max(ks))
        times.append((time.perf_counter() - t0) * 1000)
        for k in ks:
            per[(k, q["category"])].append(recall(found[:k], q["evidence"]))
    out: dict[str, Any] = {"ms_p50": statistics.median(times), "ms_p95": sorted(times)[int(0.95 * (len(times) - 1))]}
    for k in ks:
        allv = [v for (kk, _), vals in per.items() if kk == k for v in vals]
        out[f"all@{k}"] = sum(allv) / len(allv)
        for c in CATEGORIES:
            vals = per[(k, c)]
            out[f"c{c}@{k}"] = sum(vals) / len(vals) if vals else float("nan")
    return out


EMBEDDERS = {
    "static": {"provider": "model2vec"},
    "minilm": {"provider": "sentence_transformers"},
    "onnx": {"provider": "onnx"},
}


def session_time(date: str) -> str | None:
    """LoCoMo's "1:56 pm on 8 May, 2023" as ISO 8601 (the conversation's time for ``add``)."""
    try:
        return _dt.datetime.strptime(date.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=_dt.timezone.utc).isoformat()
    except ValueError:
        return None


def load_locomo(memory: Memory, samples: list[dict[str, Any]], *, per_turn: bool = False, bare: bool = False,
                ) -> tuple[list[dict[str, Any]], dict[str, list[tuple[str, str]]], int, float]:
    """Store every dated turn with its session's time, one ``add`` per session or (``per_turn``)
    one per turn, as an app logging each turn would; collect the questions with their evidence.
    ``bare``: the dated text alone, with no ``name`` (speaker) and no ``timestamp``, as an app
    that stores transcripts without their structure would."""
    questions: list[dict[str, Any]] = []
    docs: dict[str, list[tuple[str, str]]] = {}  # sample -> [(dia_id, bare text)]
    t0 = time.perf_counter()
    stored = 0
    for sample in samples:
        sid = sample["sample_id"]
        known: set[str] = set()
        docs[sid] = []
        for date, turns in sessions(sample):
            messages = [{"role": "user", "content": turn_text(date, t), **({} if bare else {"name": t["speaker"]}),
                         "metadata": {"dia_id": t["dia_id"]}} for t in turns]
            for batch in ([[m] for m in messages] if per_turn else [messages]):
                result = memory.add(batch, user_id=sid, infer=False, metadata={"session_date": date},
                                    timestamp=None if bare else session_time(date))
                stored += len(result["results"])
            known.update(t["dia_id"] for t in turns)
            docs[sid].extend((t["dia_id"], turn_text(date, t)) for t in turns)
        for qa in sample["qa"]:
            if qa.get("category") not in CATEGORIES:
                continue
            ev = evidence_ids(qa.get("evidence", []), known)
            if ev:
                questions.append({"sample": sid, "question": qa["question"], "category": qa["category"], "evidence": ev})
    return questions, docs, stored, time.perf_counter() - t0


def injected_tokens(memory: Memory, questions: list[dict[str, Any]], limit: int = 10) -> tuple[float, float]:
    """Mean and p95 tokens of the memory message a chat would get (``limit`` memories), counted
    with the MiniLM WordPiece tokenizer shipped with the static model (no GPT tokenizer is
    installable offline; WordPiece counts run close to GPT's BPE on English)."""
    from tokenizers import Tokenizer

    from memlane.engine.memory import SearchRequest
    from memlane.proxy.recall import memory_message

    tokenizer = Tokenizer.from_file(str(ROOT / "src" / "memlane" / "models" / "minilm-static" / "tokenizer.json"))
    tokenizer.no_truncation()
    counts = sorted(len(tokenizer.encode(memory_message(memory.search_hits(SearchRequest(q["question"], user_id=q["sample"], limit=limit)))["content"],
                                         add_special_tokens=False).ids) for q in questions)
    return sum(counts) / len(counts), counts[int(0.95 * (len(counts) - 1))]


def run_variants(memory: Memory, questions: list[dict[str, Any]], variants: list[tuple[str, RetrievalConfig]],
                 ks: tuple[int, ...] = (5, 10)) -> list[tuple[str, dict[str, Any]]]:
    def memlane(q: dict[str, Any], k: int) -> list[str]:
        hits = memory.search(q["question"], user_id=q["sample"], limit=k)["results"]
        return [h["metadata"].get("dia_id") for h in hits]

    rows = []
    for name, settings in variants:
        memory.config.retrieval = settings
        rows.append((name, evaluate(questions, memlane, ks)))
        print(name, {k: round(v, 3) for k, v in rows[-1][1].items()}, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--embedder", choices=sorted(EMBEDDERS), default="static", help="static (the default), minilm (torch) or onnx (MiniLM int8, no torch)")
    parser.add_argument("--static-path", default=None,
                        help="another static model folder (model2vec save_pretrained + provenance.json) instead of the shipped one")
    parser.add_argument("--out", default=None, help="default: bench/results/locomo_retrieval[_minilm].md")
    args = parser.parse_args()
    embedder = dict(EMBEDDERS[args.embedder])
    if args.static_path:
        embedder = {"provider": "model2vec", "config": {"path": args.static_path}}
    out = Path(args.out or ROOT / "bench" / "results" / f"locomo_retrieval{'' if args.embedder == 'static' else '_' + args.embedder}.md")
    samples = json.loads(Path(args.data).read_text())
    ks = (5, 10)
    rows: list[tuple[str, str, dict[str, Any]]] = []
    notes: list[str] = []
    # (one add per turn measured the same as one per session, to the third decimal, 2026-12-02)
    for mode in ("with name + timestamp, one add per session", "bare dated text, one add per session"):
        workdir = Path(tempfile.mkdtemp(prefix="memlane-locomo-"))
        memory = Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(workdir / "locomo.db")}},
                         "embedder": embedder})
        questions, docs, stored, load_s = load_locomo(memory, samples, bare=mode.startswith("bare"))
        notes.append(f"{mode}: {stored} turns stored in {load_s:.1f} s")
        print(f"{mode}: stored {stored} turns in {load_s:.1f}s; {len(questions)} questions", flush=True)
        if not rows:
            bm25 = {sid: BM25([text for _, text in d]) for sid, d in docs.items()}
            rows.append(("-", "BM25 baseline (bare BM25 over dated turns, this run)",
                         evaluate(questions, lambda q, k: [docs[q["sample"]][i][0] for i in bm25[q["sample"]].top(q["question"], k)], ks)))
        none = {"speaker_bonus": 0, "time_bonus": 0, "alignment_weight": 0, "role_bonus": 0, "day_bonus": 0, "name_bonus": 0, "stance_bonus": 0}
        variants = [
            ("keyword only (FTS5 porter + conversation context)", RetrievalConfig(keyword_weight=1.0, **none)),
            (f"dense only ({args.embedder} cosine)", RetrievalConfig(keyword_weight=0.0, **none)),
            ("weighted 0.5/0.5, no bonus, no alignment", RetrievalConfig(**none)),
            ("speaker and time bonuses, no alignment", RetrievalConfig(alignment_weight=0, role_bonus=0, day_bonus=0, name_bonus=0)),
            ("speaker and time bonuses, alignment 0.3 (the previous default)", RetrievalConfig(role_bonus=0, day_bonus=0, name_bonus=0)),
            ("default without the speaker bonus", RetrievalConfig(speaker_bonus=0)),
            ("default without the time and day bonuses", RetrievalConfig(time_bonus=0, day_bonus=0)),
            ("default without the day bonus", RetrievalConfig(day_bonus=0)),
            ("default without the name bonus", RetrievalConfig(name_bonus=0)),
            ("default without the role bonus", RetrievalConfig(role_bonus=0)),
            ("default with alignment 0.2", RetrievalConfig(alignment_weight=0.2)),
            ("default with alignment 0.4", RetrievalConfig(alignment_weight=0.4)),
            ("**default** (weighted 0.5/0.5, speaker 0.2, time 0.1, day 0.4, role 0.2, name 0.2, term alignment 0.3)", RetrievalConfig()),
        ]
        for name, result in run_variants(memory, questions, variants, ks):
            rows.append((mode, name, result))
        memory.config.retrieval = RetrievalConfig()
        mean, p95 = injected_tokens(memory, questions)
        rows[-1][2]["tokens"] = (mean, p95)
        memory.close()

    header = "| ingestion | method | all@5 | all@10 | multi-hop@10 | temporal@10 | open-domain@10 | single-hop@10 | search p50 ms | p95 ms | injected tokens mean / p95 |"
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|---|"]
    base = rows[0][2]["all@10"]
    for mode, name, r in rows:
        tokens = f"{r['tokens'][0]:.0f} / {r['tokens'][1]:.0f}" if "tokens" in r else "-"
        lines.append(
            f"| {mode} | {name} | {r['all@5']:.3f} | {r['all@10']:.3f} ({r['all@10'] / base:.2f}x) | {r['c1@10']:.3f} | {r['c2@10']:.3f} | "
            f"{r['c3@10']:.3f} | {r['c4@10']:.3f} | {r['ms_p50']:.1f} | {r['ms_p95']:.1f} | {tokens} |")
    table = "\n".join(lines)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"LoCoMo dev half: {len(questions)} questions (categories 1-4); " + "; ".join(notes)
                   + f"; embedder: {args.static_path or args.embedder}.\nRatios are against the BM25 baseline of this run. Search times include"
                   " the query embedding. Injected tokens: the memory message at limit 10 (MiniLM WordPiece count).\n\n" + table + "\n")
    print(table)


if __name__ == "__main__":
    main()
