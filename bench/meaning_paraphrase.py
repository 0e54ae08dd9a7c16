"""The paraphrase set and issue 23's two allergy questions with SPLADE-tiny document expansion:
each memory stored with its heaviest new SPLADE terms as ``metadata.search_keys`` (the keyword
index reads them with the memory's context), next to the same store without them.

    python bench/meaning_paraphrase.py --splade /tmp/meaning/cq/cognition/model [--top 10] [--floor 0.5]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from splade_numpy import SpladeEncoder  # noqa: E402

from memlane import Memory  # noqa: E402
from memlane.query.keywords import STOPWORDS  # noqa: E402

ISSUE = {"user_id": "issue23", "memories": ["I am allergic to cheese", "I live in San Francisco", "My favourite cuisine is Indian"],
         "questions": [{"q": "Which foods must I avoid?", "answer": 0}, {"q": "What can't I eat?", "answer": 0}]}


def expansion(encoder: SpladeEncoder, text: str, top: int, floor: float) -> list[str]:
    present = set(re.findall(r"[a-z]+", text.lower()))
    out = []
    for term, weight in sorted(encoder.encode(text, None).items(), key=lambda kv: -kv[1]):
        word = encoder.tokenizer.id_to_token(term)
        if weight < floor or len(out) >= top:
            break
        if word.isalpha() and len(word) > 2 and word not in STOPWORDS and word not in present:
            out.append(word)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--splade", required=True)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--floor", type=float, default=0.5)
    args = parser.parse_args()
    encoder = SpladeEncoder(args.splade)
    data = json.loads((ROOT / "bench" / "data" / "paraphrase.json").read_text())
    scopes = [*data["scopes"], ISSUE]
    for expand in (False, True):
        memory = Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(Path(tempfile.mkdtemp()) / "p.db")}}})
        try:
            for scope in scopes:
                for text in scope["memories"]:
                    keys = expansion(encoder, text, args.top, args.floor) if expand else []
                    memory.add([{"role": "user", "content": text, "metadata": {"search_keys": keys}}], user_id=scope["user_id"], infer=False)
            hits = total = 0
            for scope in scopes:
                for q in scope["questions"]:
                    found = memory.search(q["q"], user_id=scope["user_id"], limit=3)["results"]
                    ok = bool(found) and found[0]["memory"] == scope["memories"][q["answer"]]
                    if scope is ISSUE:
                        print(f"  {'expanded' if expand else 'plain'}: {q['q']} -> {found[0]['memory']} ({found[0]['score']:.3f})")
                    else:
                        hits += ok
                        total += 1
            print(f"{'with SPLADE expansion' if expand else 'default'}: paraphrase R@1 {hits / total:.3f} ({hits}/{total})")
        finally:
            memory.close()


if __name__ == "__main__":
    main()
