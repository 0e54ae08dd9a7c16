"""Conversation adjacency as a re-score (issue 23, MemoryBank R@1): measured, not built.

MemoryBank's commonest fixable miss is the turn that opens a topic ("Today I want to share with
you some books I've recently read", "Do you have any recommendations?") outranking the next
exchange, which answers. This harness tries signals that read the conversation around each
candidate, applied after the default bonuses to the same boosted pool a search ranks: it patches
``memlane.engine.recall.boosted`` and reads each memory's neighbours (the stored order within a
scope, the conversation window of stores/conversation.py, same role or not) from the sqlite
file. Rows: MemoryBank dev (tuned / held halves), LoCoMo dev in both storings (even / odd
questions), the paraphrase set. Numbers and what was dropped: bench/README.md, "Conversation
adjacency".

    python bench/adjacency_recall.py [--out bench/results/adjacency_recall.md]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "src"))

import memlane.engine.recall as recall_mod
from memlane import Memory
from memlane.engine.ranking import Ranked
from memlane.query.when import parse_time
import memorybank_retrieval as mb
import locomo_retrieval as lc
import paraphrase_recall as pr

ORIG = recall_mod.boosted
STATE: dict[str, Any] = {"extra": None, "nb": {}}


def patched(ranked, records, query, period, settings, *a, **k):
    out = ORIG(ranked, records, query, period, settings, *a, **k)
    STATE["fused"] = {r.key: r.score for r in ranked}
    f = STATE["extra"]
    if f is None:
        return out
    out = f(out, records, query)
    out.sort(key=lambda r: (-r.score, str(r.key)))
    return out


recall_mod.boosted = patched


def build_neighbours(db: Path) -> dict[int, dict[str, Any]]:
    conn = sqlite3.connect(str(db))
    rows = conn.execute("SELECT rowid, scope_key, memory, metadata, created_at FROM memories ORDER BY scope_key, rowid").fetchall()
    info: dict[int, dict[str, Any]] = {}
    by_scope: dict[str, list] = {}
    for rid, sk, mem, meta, created in rows:
        md = json.loads(meta) if meta else {}
        info[rid] = {"scope": sk, "memory": mem, "role": md.get("role") or "user", "t": parse_time(created)}
        by_scope.setdefault(sk, []).append(rid)
    for sk, rids in by_scope.items():
        for i, rid in enumerate(rids):
            me = info[rid]
            def close(o):
                return me["t"] is not None and info[o]["t"] is not None and abs((me["t"] - info[o]["t"]).total_seconds()) <= 3600
            me["prev"] = rids[i - 1] if i > 0 and close(rids[i - 1]) else None
            me["next"] = rids[i + 1] if i + 1 < len(rids) and close(rids[i + 1]) else None
            # previous / next of the same role within the conversation (no window break in between)
            p = None
            j = i - 1
            while j >= 0 and close(rids[j]):
                if info[rids[j]]["role"] == me["role"]:
                    p = rids[j]
                    break
                j -= 1
            me["prev_same"] = p
            n = None
            j = i + 1
            while j < len(rids) and close(rids[j]):
                if info[rids[j]]["role"] == me["role"]:
                    n = rids[j]
                    break
                j += 1
            me["next_same"] = n
    conn.close()
    return info


# ---------------------------------------------------------------- signals

def carry(w: float, link: str = "prev_same", gap: bool = False, gate=None, top: int | None = None, base: str = "boosted", rel: bool = False):
    """m gains w * score of its predecessor (link) when that predecessor is in the pool.
    gap: w * max(0, pred - m). gate(pred_id) -> bool: only from predecessors passing it.
    top: only predecessors among the first ``top`` of the pool."""
    def f(out, records, query):
        nb = STATE["nb"]
        score = {r.key: r.score for r in out} if base == "boosted" else STATE["fused"]
        best = max(score.values()) if score else 1.0
        allowed = set(r.key for r in out[:top]) if top else None
        res = []
        for r in out:
            links = link.split("|")
            ps = [nb.get(r.key, {}).get(l) for l in links]
            ps = [x for x in ps if x is not None and x in score]
            p = max(ps, key=score.get) if ps else None
            b = 0.0
            if p is not None and p in score and (allowed is None or p in allowed) and (gate is None or gate(p)):
                b = w * (max(0.0, score[p] - r.score) if gap else score[p])
                if rel: b = b / best
            res.append(Ranked(r.key, r.score + b, r.dense, r.keyword, r.hybrid) if b else r)
        return res
    return f


def asks_back(pid):
    """the reply to pid (its next message of the other role) asks something"""
    nb = STATE["nb"]
    n = nb[pid].get("next")
    return n is not None and nb[n]["role"] != nb[pid]["role"] and "?" in nb[n]["memory"]


def self_asks(pid):
    return STATE["nb"][pid]["memory"].rstrip().endswith("?")


def announces(pid):
    nb = STATE["nb"]
    n = nb[pid].get("next")
    return asks_back(pid) or self_asks(pid)


# ---------------------------------------------------------------- runs

def mb_run(variants):
    data = mb.DATA
    history = json.loads((data / "memorybank_dev.json").read_text())
    qs = mb.questions(json.loads((data / "memorybank_dev_labels.json").read_text()))
    wd = Path(tempfile.mkdtemp(prefix="adj-mb-"))
    m = Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(wd / "mb.db")}}, "embedder": {"provider": "model2vec"}})
    mb.load(m, history)
    STATE["nb"] = build_neighbours(wd / "mb.db")
    out = {}
    for name, f in variants:
        STATE["extra"] = f
        r = mb.evaluate(qs, mb.memlane_retrieve(m))
        out[name] = r
        hits = []
        for i, q in enumerate(qs):
            found = list(dict.fromkeys(mb.memlane_retrieve(m)(q)))
            if mb.answered_at(found, q["groups"], 1):
                hits.append(i)
        r["hits"] = hits
    STATE["extra"] = None
    m.close()
    return out


def lc_run(variants, bare: bool):
    samples = json.loads(lc.DEFAULT_DATA.read_text())
    wd = Path(tempfile.mkdtemp(prefix="adj-lc-"))
    m = Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(wd / "l.db")}}, "embedder": {"provider": "model2vec"}})
    questions, *_ = lc.load_locomo(m, samples, bare=bare)
    STATE["nb"] = build_neighbours(wd / "l.db")
    out = {}
    def ret(q, k):
        return [h["metadata"].get("dia_id") for h in m.search(q["question"], user_id=q["sample"], limit=k)["results"]]
    for name, f in variants:
        STATE["extra"] = f
        vals = []
        cats = {}
        for q in questions:
            found = ret(q, 10)
            v = lc.recall(found, q["evidence"])
            vals.append(v)
            cats.setdefault(q["category"], []).append(v)
        r = {"all@10": sum(vals) / len(vals), "even": sum(vals[0::2]) / len(vals[0::2]), "odd": sum(vals[1::2]) / len(vals[1::2])}
        for c, vs in cats.items():
            r[f"c{c}"] = sum(vs) / len(vs)
        out[name] = r
    STATE["extra"] = None
    m.close()
    return out


def pr_run(variants):
    data = json.loads(pr.DATA.read_text())
    wd = Path(tempfile.mkdtemp(prefix="adj-pr-"))
    m = Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(wd / "p.db")}}, "embedder": {"provider": "model2vec"}})
    pr.load(m, data)
    STATE["nb"] = build_neighbours(wd / "p.db")
    out = {}
    for name, f in variants:
        STATE["extra"] = f
        r1, _, misses = pr.recall_at_1(m, data)
        out[name] = (r1, misses)
    STATE["extra"] = None
    m.close()
    return out


_COMM = r"(?:talk|tell|share|chat|discuss|ask|say|speak)"
ANNOUNCE = re.compile(
    r"\b(?:i|we)\b[^.!?]{0,40}?\b" + _COMM + r"\w*\b[^.!?]{0,30}?\b(?:you|with you|to you)\b"   # I want to talk to you about
    r"|\b(?:i|we) (?:have|had|got) (?:a|some) (?:question|problem|news)"                       # I have a question about
    r"|\b(?:do|can|could|would) you (?:have )?(?:any |some )?(?:recommend|suggest|advice|recommendations|suggestions|tips|ideas)\b",
    re.I)


def is_announcement(text: str) -> bool:
    return bool(ANNOUNCE.search(text))


def handoff(delta: float = 0.01, w: float | None = None, link: str = "next_same", penalty: float = 0.0, exchange: bool = False):
    """An announcing memory in the pool hands its score to its follow-up (next same-role memory,
    and with exchange=True to that memory's reply too): follow-up = max(own, announcer + delta)
    (or own + w * announcer)."""
    def f(out, records, query):
        nb = STATE["nb"]
        score = {r.key: r.score for r in out}
        new = dict(score)
        for k, s in score.items():
            if not is_announcement(nb[k]["memory"]):
                continue
            if penalty:
                new[k] = new[k] - penalty
            n = nb[k].get(link)
            targets = [n] if n is not None else []
            if exchange and n is not None:
                r2 = nb[n].get("next")
                if r2 is not None and nb[r2]["role"] != nb[n]["role"]:
                    targets.append(r2)
            for t in targets:
                if t in score:
                    new[t] = max(new[t], s + delta) if w is None else new[t] + w * s
        return [Ranked(r.key, new[r.key], r.dense, r.keyword, r.hybrid) if new[r.key] != r.score else r for r in out]
    return f

META = re.compile(r"\b(?:i|we)\b[^.!?]{0,40}?\b" + _COMM + r"\w*\b[^.!?]{0,30}?\b(?:you|with you|to you)\b"
                  r"|\b(?:i|we) (?:have|had|got) (?:a|some) (?:question|problem|news)", re.I)
REQUEST = re.compile(r"\b(?:do|can|could|would) you (?:have )?(?:any |some )?(?:recommend|suggest|advice|recommendations|suggestions|tips|ideas)\b", re.I)


def split_carry(w: float, meta_targets=("next_same", "reply"), request_targets=("reply",), base="boosted"):
    def f(out, records, query):
        nb = STATE["nb"]
        score = {r.key: r.score for r in out}
        src = score if base == "boosted" else STATE["fused"]
        new = dict(score)
        for k, s in score.items():
            text = nb[k]["memory"]
            kinds = []
            if META.search(text): kinds = meta_targets
            elif REQUEST.search(text): kinds = request_targets
            if not kinds: continue
            targets = set()
            n = nb[k].get("next_same")
            reply = nb[k].get("next") if nb[k].get("next") is not None and nb[nb[k]["next"]]["role"] != nb[k]["role"] else None
            for kind in kinds:
                if kind == "next_same" and n is not None: targets.add(n)
                if kind == "reply" and reply is not None: targets.add(reply)
                if kind == "next_reply" and n is not None:
                    r2 = nb[n].get("next")
                    if r2 is not None and nb[r2]["role"] != nb[n]["role"]: targets.add(r2)
            for t in targets:
                if t in score:
                    new[t] = new[t] + w * src[k]
        return [Ranked(r.key, new[r.key], r.dense, r.keyword, r.hybrid) if new[r.key] != r.score else r for r in out]
    return f


VARIANTS = [
    ("default (no re-score)", None),
    ("carry: + w x the previous same-role memory's score, w 0.15", carry(0.15)),
    ("carry, w 0.2", carry(0.2)),
    ("carry, w 0.25", carry(0.25)),
    ("carry from the previous memory of either role or the same role (the higher), w 0.2", carry(0.2, link="prev|prev_same")),
    ("carry only from the pool's first 3, w 0.2", carry(0.2, top=3)),
    ("carry of the pre-bonus fused score, w 0.2", carry(0.2, base="fused")),
    ("carry gated: the predecessor's reply asks ('?'), w 0.2", carry(0.2, gate=asks_back)),
    ("announcement penalty alone, 0.2", handoff(delta=-9, penalty=0.2)),
    ("announcement hand-off: follow-up = max(own, announcer + 0.01)", handoff()),
    ("announcement carry to the next same-role memory, w 0.2", handoff(w=0.2)),
    ("announcement carry to the next same-role memory and its reply, w 0.2", handoff(w=0.2, exchange=True)),
    ("announcement carry, next + its reply, w 0.25", handoff(w=0.25, exchange=True)),
    ("announcement carry, next + its reply, w 0.3", handoff(w=0.3, exchange=True)),
    ("meta-talk only (no requests), next + its reply, w 0.3", split_carry(0.3, ("next_same", "next_reply"), ())),
    ("meta-talk to next + reply, requests to their own reply, w 0.3", split_carry(0.3, ("next_same", "next_reply"), ("reply",))),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "adjacency_recall.md"))
    args = parser.parse_args()
    mbr = mb_run(VARIANTS)
    prr = pr_run(VARIANTS)
    lcr = {bare: lc_run(VARIANTS, bare) for bare in (False, True)}
    lines = ["| re-score (static default underneath) | MemoryBank R@1 | R@3 | R@5 | tuned R@1 / R@5 | held R@1 / R@5 | "
             "LoCoMo name + ts @10 (even / odd) | LoCoMo bare @10 (even / odd) | paraphrase R@1 |", "|---|---|---|---|---|---|---|---|---|"]
    for name, _ in VARIANTS:
        r, a, b = mbr[name], lcr[False][name], lcr[True][name]
        lines.append(f"| {name} | {r['all@1']:.3f} | {r['all@3']:.3f} | {r['all@5']:.3f} | {r['tuned@1']:.3f} / {r['tuned@5']:.3f} | "
                     f"{r['held@1']:.3f} / {r['held@5']:.3f} | {a['all@10']:.3f} ({a['even']:.3f} / {a['odd']:.3f}) | "
                     f"{b['all@10']:.3f} ({b['even']:.3f} / {b['odd']:.3f}) | {prr[name][0]:.3f} |")
    text = "\n".join(lines)
    Path(args.out).write_text("Conversation adjacency re-scores (bench/adjacency_recall.py), static model, dev halves.\n\n" + text + "\n")
    print(text)


if __name__ == "__main__":
    main()
