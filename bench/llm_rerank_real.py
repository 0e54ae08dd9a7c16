"""What the ``llm`` reranker does with a real small model: does an offline LLM that reads the
question and the fused candidates together lift recall where the fused ranking misses, and what
does a search cost then?

The model is Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, llama.cpp in-process, as in
learning_quality.py and search_keys_real.py), served by ``LocalModelServer`` on a loopback port
and wired in as the memory LLM (the ``llm`` section); the reranker is
``{provider: llm, config: {top_n, timeout}}``. Each dataset is stored once, as its own bench
stores it (memorybank_retrieval.py's ``load``; locomo_retrieval.py's ``load_locomo`` with name +
timestamp), with the default retrieval settings, and every question is asked twice on the same
``Memory``: ``rerank=False`` (the fused order) and with the reranker, timed.

- MemoryBank dev: R@1 / R@3 / R@5 over distinct exchanges (``memorybank_retrieval.answered_at``),
  ``limit`` 10 (two messages an exchange, so at least 5 exchanges), split into the tuned (even)
  and held (odd) halves as that bench splits them.
- LoCoMo dev: evidence recall@10 on a fixed sample of the multi-hop and open-domain questions
  (every k-th of them, in the dataset's order), ``limit`` 10; the fused top-``top_n`` evidence
  recall is the ceiling a reranker of that window can reach.

Each question's record goes to ``--records`` (JSON lines) as it is measured, so a run cut short
still reports what it measured (``--report-only`` rebuilds the tables from that file).

    python bench/llm_rerank_real.py [--cache /tmp/qwen-cache] [--threads 2] [--context 8192]
        [--top-n 20] [--timeout 60] [--memorybank-every 1] [--locomo-sample 40]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import locomo_retrieval  # noqa: E402
import memorybank_retrieval  # noqa: E402

from memlane import Memory  # noqa: E402

MB_KS = (1, 3, 5)
MB_LIMIT = 10
LOCOMO_K = 10
LOCOMO_CATEGORIES = (1, 3)  # multi-hop, open-domain: the weakest


def memory_for(path: str, server_url: str, top_n: int, timeout: float) -> Memory:
    return Memory({"vector_store": {"provider": "sqlite", "config": {"path": path}},
                   "llm": {"provider": "openai", "config": {"base_url": server_url, "api_key": "x", "model": "qwen1.5b",
                                                            "max_retries": 0, "timeout": 600}},
                   "reranker": {"provider": "llm", "config": {"top_n": top_n, "timeout": timeout}}})


def timed_pair(memory: Memory, question: str, scope: str, limit: int, server: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """The fused and the reranked results of one question, with what the reranked search cost."""
    fused = memory.search(question, user_id=scope, limit=limit, rerank=False)["results"]
    before = memory.rerank_stats()
    calls_before = len(server.model_calls())
    started = time.perf_counter()
    reranked = memory.search(question, user_id=scope, limit=limit)["results"]
    seconds = time.perf_counter() - started
    after = memory.rerank_stats()
    fell_back = after["rerank_fallbacks"] > before["rerank_fallbacks"]
    calls = server.model_calls()[calls_before:]
    prompt_chars = sum(len(m.get("content", "")) for c in calls if isinstance(c.body, dict) for m in c.body.get("messages", []))
    cost = {"seconds": round(seconds, 2), "fallback": fell_back, "error": after["last_rerank_error"] if fell_back else None,
            "prompt_chars": prompt_chars, "model_seconds": round(sum(c.seconds for c in calls), 2),
            "answer_chars": sum(len(c.text) for c in calls), "finish": [c.finish_reason for c in calls],
            "answer": [c.text[:2000] for c in calls],
            "rerank_scores": [round(h["rerank_score"], 3) for h in reranked if "rerank_score" in h],
            "hybrid_scores": [round(h["hybrid_score"], 3) for h in reranked if "hybrid_score" in h]}
    return fused, reranked, cost


def memorybank(args: argparse.Namespace, server: Any, records: Any, work: str) -> None:
    data = Path(args.memorybank_data)
    history = json.loads((data / "memorybank_dev.json").read_text())
    qs = memorybank_retrieval.questions(json.loads((data / "memorybank_dev_labels.json").read_text()))
    memory = memory_for(f"{work}/mb.db", server.url, args.top_n, args.timeout)
    try:
        memorybank_retrieval.load(memory, history)
        for i, q in enumerate(qs):
            if (i not in args.memorybank_questions) if args.memorybank_questions else i % args.memorybank_every:
                continue
            fused, reranked, cost = timed_pair(memory, q["question"], q["user"], MB_LIMIT, server)
            out: dict[str, Any] = {"set": "memorybank", "i": i, "half": "tuned" if i % 2 == 0 else "held", "question": q["question"], **cost}
            for name, hits in (("fused", fused), ("reranked", reranked)):
                found = list(dict.fromkeys(h["metadata"]["exchange"] for h in hits))
                out[name] = {k: memorybank_retrieval.answered_at(found, q["groups"], k) for k in MB_KS}
                out[name + "_top"] = found[:5]
            if kept(records, out, f"mb q{i}: fused {out['fused']} reranked {out['reranked']}", cost, args.deadline, "MemoryBank"):
                break
    finally:
        memory.close()


def kept(records: Any, out: dict[str, Any], line: str, cost: dict[str, Any], deadline: float, dataset: str) -> bool:
    """Write one question's record as it finishes (a cut run keeps what it measured), say it,
    and whether the time budget is spent (the dataset's sample is cut there)."""
    records.write(json.dumps(out, ensure_ascii=False) + "\n")
    records.flush()
    print(f"{line} {cost['seconds']} s fallback={cost['fallback']} {cost['error'] or ''}", flush=True)
    if time.time() > deadline:
        print(f"deadline reached: {dataset} sample cut here", flush=True)
        return True
    return False


def locomo_sample(questions: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """Every k-th multi-hop or open-domain question, in the dataset's order, k = ceil(n / size)."""
    pool = [q for q in questions if q["category"] in LOCOMO_CATEGORIES]
    step = max(1, math.ceil(len(pool) / size))
    return pool[::step]


def locomo(args: argparse.Namespace, server: Any, records: Any, work: str) -> None:
    samples = json.loads(Path(args.locomo_data).read_text())
    memory = memory_for(f"{work}/locomo.db", server.url, args.top_n, args.timeout)
    try:
        questions, _, _, _ = locomo_retrieval.load_locomo(memory, samples)
        pool = [q for q in questions if q["category"] in LOCOMO_CATEGORIES]
        sample = locomo_sample(questions, args.locomo_sample)
        print(f"locomo: {len(questions)} questions, {len(pool)} multi-hop/open-domain, sample of {len(sample)}", flush=True)
        for n, q in enumerate(sample):
            window = memory.search(q["question"], user_id=q["sample"], limit=args.top_n, rerank=False)["results"]
            fused, reranked, cost = timed_pair(memory, q["question"], q["sample"], LOCOMO_K, server)
            out = {"set": "locomo", "n": n, "category": q["category"], "question": q["question"], **cost,
                   "pool": len(pool), "step": max(1, math.ceil(len(pool) / args.locomo_sample)),
                   "window": locomo_retrieval.recall([h["metadata"].get("dia_id") for h in window], q["evidence"]),
                   "fused": locomo_retrieval.recall([h["metadata"].get("dia_id") for h in fused], q["evidence"]),
                   "reranked": locomo_retrieval.recall([h["metadata"].get("dia_id") for h in reranked], q["evidence"])}
            if kept(records, out, f"locomo {n} c{q['category']}: window {out['window']:.2f} fused {out['fused']:.2f}"
                    f" reranked {out['reranked']:.2f}", cost, args.deadline, "LoCoMo"):
                break
    finally:
        memory.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))] if ordered else float("nan")


def cost_cells(rows: list[dict[str, Any]]) -> str:
    seconds = [r["seconds"] for r in rows]
    falls = [r for r in rows if r["fallback"]]
    return (f"{statistics.median(seconds):.1f} | {pct(seconds, 0.95):.1f} | {len(falls)} of {len(rows)}"
            f" | {max(r['prompt_chars'] for r in rows)}")


def report(rows: list[dict[str, Any]], header: str) -> str:
    lines = [header, ""]
    mb = [r for r in rows if r["set"] == "memorybank"]
    if mb:
        lines += ["### MemoryBank dev", "",
                  "| search | questions | R@1 | R@3 | R@5 | tuned half R@1 / R@5 | held half R@1 / R@5 | reranked search p50 s | p95 s | fallbacks | longest prompt (chars) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, label in (("fused", "default, no reranker (`rerank=False`)"), ("reranked", "default + `llm` reranker")):
            def share(part: list[dict[str, Any]], k: int) -> str:
                return f"{sum(r[name][str(k)] for r in part) / len(part):.3f}" if part else "-"
            tuned = [r for r in mb if r["half"] == "tuned"]
            held = [r for r in mb if r["half"] == "held"]
            cells = [share(mb, k) for k in MB_KS]
            tail = cost_cells(mb) if name == "reranked" else "- | - | - | -"
            lines.append(f"| {label} | {len(mb)} | " + " | ".join(cells)
                         + f" | {share(tuned, 1)} / {share(tuned, 5)} ({len(tuned)}) | {share(held, 1)} / {share(held, 5)} ({len(held)}) | {tail} |")
        gained = [r["i"] for r in mb if r["reranked"]["1"] and not r["fused"]["1"]]
        lost = [r["i"] for r in mb if r["fused"]["1"] and not r["reranked"]["1"]]
        lines += ["", f"At rank 1 the reranker gained q{', q'.join(map(str, gained)) or ' none'} and lost q{', q'.join(map(str, lost)) or ' none'}.", ""]
    lc = [r for r in rows if r["set"] == "locomo"]
    if lc:
        lines += ["### LoCoMo dev (name + timestamp), multi-hop and open-domain sample", "",
                  "| search | questions | evidence recall@10 | multi-hop@10 | open-domain@10 | reranked search p50 s | p95 s | fallbacks | longest prompt (chars) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, label in (("window", f"fused top-{rows[0].get('top_n', 'n')} (the reranker's window: its ceiling)"),
                            ("fused", "default, no reranker (`rerank=False`)"), ("reranked", "default + `llm` reranker")):
            def mean(part: list[dict[str, Any]]) -> str:
                return f"{sum(r[name] for r in part) / len(part):.3f} ({len(part)})" if part else "-"
            tail = cost_cells(lc) if name == "reranked" else "- | - | - | -"
            lines.append(f"| {label} | {len(lc)} | {mean(lc)} | {mean([r for r in lc if r['category'] == 1])}"
                         f" | {mean([r for r in lc if r['category'] == 3])} | {tail} |")
        lines.append("")
    errors = sorted({r["error"] for r in rows if r["error"]})
    if errors:
        lines += ["Fallback reasons (distinct):", "", *[f"- {e[:300]}" for e in errors], ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", default="/tmp/qwen-cache", help="where the Qwen GGUF is kept (learning_quality.qwen_gguf)")
    parser.add_argument("--smollm2", action="store_true", help="SmolLM2-135M instead of Qwen (the fallback)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--context", type=int, default=8192)
    parser.add_argument("--top-n", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--memorybank-every", type=int, default=1, help="ask every k-th MemoryBank question (1: all 46)")
    parser.add_argument("--memorybank-questions", type=lambda v: {int(x) for x in v.split(",")}, default=None,
                        help="ask only these MemoryBank questions (indexes, comma-separated), instead of every k-th")
    parser.add_argument("--locomo-sample", type=int, default=40)
    parser.add_argument("--sets", default="memorybank,locomo")
    parser.add_argument("--minutes", type=float, default=600.0, help="stop asking a set after this long (its sample is cut, and says so)")
    parser.add_argument("--locomo-minutes", type=float, default=None, help="LoCoMo's own --minutes (default: the same)")
    parser.add_argument("--memorybank-data", default=str(memorybank_retrieval.DATA))
    parser.add_argument("--locomo-data", default=str(locomo_retrieval.DEFAULT_DATA))
    parser.add_argument("--records", default=str(ROOT / "bench" / "results" / "llm_rerank_real.jsonl"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "llm_rerank_real.md"))
    parser.add_argument("--report-only", action="store_true", help="rebuild the tables from --records")
    parser.add_argument("--note", default="", help="a line for the report's header (date, load, settings)")
    args = parser.parse_args()
    if not args.report_only:
        from learning_quality import qwen_gguf

        from memlane.testing.local_model import LocalModelServer, find_smollm2

        path = find_smollm2() if args.smollm2 else qwen_gguf(Path(args.cache).expanduser())
        server = LocalModelServer(path, model_name="qwen1.5b", threads=args.threads, context=args.context, slots=1).start()
        try:
            with open(args.records, "w") as records, tempfile.TemporaryDirectory(prefix="memlane-rerank-") as work:
                for name in args.sets.split(","):
                    minutes = args.locomo_minutes if name == "locomo" and args.locomo_minutes is not None else args.minutes
                    args.deadline = time.time() + minutes * 60
                    {"memorybank": memorybank, "locomo": locomo}[name](args, server, records, work)
        finally:
            server.stop()
    rows = [json.loads(line) for line in Path(args.records).read_text().splitlines() if line.strip()]
    for r in rows:
        r["top_n"] = args.top_n
        for name in ("fused", "reranked"):
            if isinstance(r.get(name), dict):
                r[name] = {str(k): v for k, v in r[name].items()}
    text = report(rows, args.note)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
