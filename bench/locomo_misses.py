"""LoCoMo misses: each multi-hop and open-domain evidence turn the default search leaves out of
its top 10, with what kind of miss it is, counted (issue 23's step 1).

Reads the pools written by ``meaning_pools.py`` (the default search's top 30 and top 100 per
question, both storings). For every evidence turn missing from the top 10 it records: its rank
in the top 100 (or "> 100"); whether it is from a session none of the top 10 is from; whether
it is said by the other speaker (the question names one speaker and the turn is the other's);
how many of the question's content words it shares (stemmed, names left out), and whether
those are only in its image caption; and whether the question needs several turns.

    python bench/locomo_misses.py [--pools /tmp/meaning/pools.pkl] [--out bench/results/locomo_misses.md]
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import locomo_retrieval as locomo  # noqa: E402

from memlane.query.keywords import STOPWORDS  # noqa: E402

WANTED = {1: "multi-hop", 3: "open-domain"}


def stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content(text: str, names: set[str]) -> set[str]:
    words = re.findall(r"[a-z][a-z']+", text.lower())
    return {stem(w) for w in words if w not in STOPWORDS and w not in names and len(w) > 2}


def turns_of(samples: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for sample in samples:
        for date, turns in locomo.sessions(sample):
            for t in turns:
                out[(sample["sample_id"], t["dia_id"])] = {**t, "date": date}
    return out


def session(dia_id: str) -> str:
    return dia_id.split(":")[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pools", default="/tmp/meaning/pools.pkl")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "locomo_misses.md"))
    args = parser.parse_args()
    pools = pickle.loads(Path(args.pools).read_bytes())
    samples = json.loads(locomo.DEFAULT_DATA.read_text())
    turns = turns_of(samples)
    speakers = {s["sample_id"]: {s["conversation"]["speaker_a"], s["conversation"]["speaker_b"]} for s in samples}
    lines: list[str] = []
    summary: list[str] = []
    for storing in ("locomo-named", "locomo-bare"):
        counts: dict[str, Counter[str]] = {c: Counter() for c in WANTED.values()}
        listing: list[str] = []
        for q in pools[storing]:
            cat = WANTED.get(q["category"])
            if cat is None:
                continue
            top = [label for _, _, label, _, _ in q["pool"][:10]]
            missed = [e for e in q["evidence"] if e not in top]
            c = counts[cat]
            c["questions"] += 1
            c["evidence turns"] += len(q["evidence"])
            if not missed:
                continue
            c["questions with a miss"] += 1
            people = speakers[q["sample"]]
            names = {p.lower() for p in people}
            named = {p for p in people if re.search(rf"\b{re.escape(p)}\b", q["question"])}
            qwords = content(q["question"], names)
            top_sessions = {session(t) for t in top}
            listing.append(f"### [{storing}, {cat}] {q['sample']}: {q['question']} (evidence {len(q['evidence'])}, missed {len(missed)})")
            for _, text, label, _, _ in q["pool"][:3]:
                listing.append(f"- hit {label}: {text[:150]}")
            for e in missed:
                t = turns[(q["sample"], e)]
                rank = q["deep"].index(e) + 1 if e in q["deep"] else None
                c["missed turns"] += 1
                kinds = []
                if rank is None:
                    kinds.append("rank > 100")
                elif rank <= 30:
                    kinds.append("rank 11-30")
                else:
                    kinds.append("rank 31-100")
                if session(e) not in top_sessions:
                    kinds.append("from a session no top-10 hit is from")
                if named and t["speaker"] not in named:
                    kinds.append("said by the other speaker")
                shared_text = qwords & content(t["text"], names)
                shared_caption = qwords & content(t.get("blip_caption") or "", names)
                if not shared_text and not shared_caption:
                    kinds.append("no content word shared with the question")
                elif not shared_text:
                    kinds.append("shares words only through its image caption")
                if t.get("blip_caption"):
                    kinds.append("has an image caption")
                if len(q["evidence"]) > 1:
                    kinds.append("question needs several turns")
                c.update(kinds)
                cap = f" (image: {t['blip_caption']})" if t.get("blip_caption") else ""
                listing.append(f"- missed {e} rank {rank or '>100'} [{'; '.join(kinds[1:]) or '-'}]: {t['speaker']}: {t['text'][:150]}{cap[:80]}")
        order = ["questions", "questions with a miss", "evidence turns", "missed turns", "rank 11-30", "rank 31-100", "rank > 100",
                 "from a session no top-10 hit is from", "said by the other speaker", "no content word shared with the question",
                 "shares words only through its image caption", "has an image caption", "question needs several turns"]
        summary.append(f"**{storing}** (default configuration; a missed turn can be of several kinds)\n")
        summary.append("| kind | " + " | ".join(WANTED.values()) + " |")
        summary.append("|---|" + "---|" * len(WANTED))
        for kind in order:
            summary.append(f"| {kind} | " + " | ".join(str(counts[cat][kind]) for cat in WANTED.values()) + " |")
        summary.append("")
        lines += [f"## {storing}", ""] + listing + [""]
    text = "# LoCoMo dev misses: multi-hop and open-domain evidence outside the top 10\n\n" + "\n".join(summary) + "\n" + "\n".join(lines)
    Path(args.out).write_text(text)
    print("\n".join(summary))


if __name__ == "__main__":
    main()
