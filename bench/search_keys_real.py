"""What a real memory model's search keys add to recall (issue 23, item 3: "say what a real LLM
adds").

``inference.search_keys`` asks extraction for a few phrases in other words per fact ("Is allergic
to cheese": "foods to avoid"), kept as ``metadata.search_keys`` and indexed with the fact, never
shown. The scripted extractor's keys are keys we wrote; here a real offline model writes them:
Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, llama.cpp, as in learning_quality.py).

Method, on memlane's paraphrase set (bench/data/paraphrase.json: 24 memories in three scopes, 25
questions that share no content word with their answer, among them issue 23's two allergy
questions):

1. Each memory, said by the user as one chat turn, is learnt alone (``Memory.add``, infer on,
   its own empty scope: one extraction call, no reconcile), so each fact knows which memory it
   came from: once with ``search_keys`` off and once on (the prompt asking for keys is longer,
   and a small model answers it differently). What the model wrote is kept in ``--facts``
   (JSON), and a later run with the same file skips the model.
2. Four stores per embedder, searched with the default retrieval settings: the original
   sentences (``infer=False``, the paraphrase bench's own storing); the facts learnt with keys
   off; the facts learnt with keys on, with their keys; the same facts without them (which
   isolates what the keys do). R@1: the first hit came from the memory that answers.

    python bench/search_keys_real.py [--facts bench/results/search_keys_qwen.json] [--embedders static,onnx]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from memlane import Memory  # noqa: E402

DATA = ROOT / "bench" / "data" / "paraphrase.json"
EMBEDDERS = {"static": "model2vec", "onnx": "onnx"}
ALLERGY = ("Which foods must I avoid?", "what can't I eat?")


def learn_with_keys(data: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each memory learnt alone by the real model with ``search_keys`` on: its facts and keys."""
    from learning_quality import qwen_gguf

    from memlane.testing.local_model import LocalModelServer

    path = qwen_gguf(Path(args.cache).expanduser())
    server = LocalModelServer(path, model_name="qwen1.5b", threads=args.threads, context=4096, max_tokens=256).start()
    out: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="memlane-keys-") as work:
            for keys in (False, True):
                memory = Memory({"vector_store": {"provider": "sqlite", "config": {"path": f"{work}/learn-{keys}.db"}},
                                 "llm": {"provider": "openai", "config": {"base_url": server.url, "api_key": "x", "model": "qwen1.5b",
                                                                          "max_retries": 0, "timeout": 600}},
                                 "inference": {"search_keys": keys}})
                for scope in data["scopes"]:
                    for index, text in enumerate(scope["memories"]):
                        alone = f"{scope['user_id']}-{index}"
                        started = time.perf_counter()
                        memory.add([{"role": "user", "content": text}], user_id=alone)
                        facts = [{"memory": r["memory"], "search_keys": r["metadata"].get("search_keys", [])}
                                 for r in memory.get_all(user_id=alone)["results"]]
                        out.append({"user_id": scope["user_id"], "index": index, "said": text, "keys": keys, "facts": facts,
                                    "seconds": round(time.perf_counter() - started, 1)})
                        print(f"keys {keys}: {text!r} -> {facts} ({out[-1]['seconds']} s)", flush=True)
                memory.close()
    finally:
        server.stop()
    return out


#: how each store holds the scopes: the sentences, or the facts of one learning run, with or without their keys
STORINGS = {"said": "the sentences (infer=False)", "facts": "facts learnt with keys off",
            "keyed+keys": "facts learnt with keys on, with their keys", "keyed": "the same facts without their keys"}


def store(memory: Memory, data: dict[str, Any], learnt: list[dict[str, Any]], how: str) -> None:
    """The scopes' memories as ``how`` (a ``STORINGS`` key) says."""
    for scope in data["scopes"]:
        for index, text in enumerate(scope["memories"]):
            if how == "said":
                memory.add(text, user_id=scope["user_id"], infer=False, metadata={"src": index})
                continue
            entry = next(e for e in learnt if e["user_id"] == scope["user_id"] and e["index"] == index
                         and e["keys"] == how.startswith("keyed"))
            for fact in entry["facts"]:
                metadata: dict[str, Any] = {"src": index}
                if how == "keyed+keys" and fact["search_keys"]:
                    metadata["search_keys"] = fact["search_keys"]
                memory.add(fact["memory"], user_id=scope["user_id"], infer=False, metadata=metadata)


def recall(memory: Memory, data: dict[str, Any]) -> tuple[float, dict[str, int | None], list[str]]:
    """R@1, the rank of the answer for the two allergy questions (None: not in the top 10), misses."""
    hits, total, ranks, misses = 0, 0, {}, []
    for scope in data["scopes"]:
        for q in scope["questions"]:
            found = memory.search(q["q"], user_id=scope["user_id"], limit=10)["results"]
            total += 1
            sources = [h["metadata"].get("src") for h in found]
            if sources and sources[0] == q["answer"]:
                hits += 1
            elif found:
                misses.append(f"{q['q']} -> {found[0]['memory']}")
            if q["q"] in ALLERGY:
                ranks[q["q"]] = sources.index(q["answer"]) + 1 if q["answer"] in sources else None
    return hits / total, ranks, misses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--facts", default=str(ROOT / "bench" / "results" / "search_keys_qwen.json"),
                        help="what the model wrote (made when missing; reused when present)")
    parser.add_argument("--embedders", default="static,onnx")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", default="~/.cache/memlane-bench/qwen1.5b", help="where the Qwen GGUF is kept")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "search_keys_real.md"))
    args = parser.parse_args()
    data = json.loads(DATA.read_text())
    facts_file = Path(args.facts)
    if facts_file.exists():
        learnt = json.loads(facts_file.read_text())
    else:
        learnt = learn_with_keys(data, args)
        facts_file.write_text(json.dumps(learnt, indent=1, ensure_ascii=False) + "\n")
    runs = []
    for keys in (False, True):
        entries = [e for e in learnt if e["keys"] == keys]
        runs.append(f"keys {'on' if keys else 'off'}: {sum(len(e['facts']) for e in entries)} facts from {len(entries)} memories"
                    f" ({sum(1 for e in entries if not e['facts'])} gave none), {sum(1 for e in entries for f in e['facts'] if f['search_keys'])}"
                    f" with keys, {sum(e['seconds'] for e in entries) / max(1, len(entries)):.1f} s a memory")
    lines = [f"Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, llama.cpp) learnt the memories of the paraphrase set one by one, each in its"
             f" own scope: {'; '.join(runs)}. Default retrieval settings; R@1 over {sum(len(s['questions']) for s in data['scopes'])}"
             " questions; the allergy columns give the answer's rank (- : not in the top 10; a memory that gave no fact cannot be found).",
             "", "| embedder | stored as | R@1 | \"Which foods must I avoid?\" | \"what can't I eat?\" |", "|---|---|---|---|---|"]
    misses_out: list[str] = []
    for name in args.embedders.split(","):
        for how in STORINGS:
            with tempfile.TemporaryDirectory(prefix="memlane-keys-") as work:
                memory = Memory({"vector_store": {"provider": "sqlite", "config": {"path": f"{work}/s.db"}},
                                 "embedder": {"provider": EMBEDDERS[name]}})
                store(memory, data, learnt, how)
                r1, ranks, misses = recall(memory, data)
                memory.close()
            label = STORINGS[how]
            lines.append(f"| {name} | {label} | {r1:.3f} | {ranks.get(ALLERGY[0]) or '-'} | {ranks.get(ALLERGY[1]) or '-'} |")
            misses_out += [f"- {name}, {how}: {m}" for m in misses]
            print(lines[-1], flush=True)
    lines += ["", "Misses (question -> first hit):", "", *misses_out]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
