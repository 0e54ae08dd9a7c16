"""How much of each chat request a provider's prompt cache can reuse, per memory placement.

Providers cache prompts by exact prefix (OpenAI, Anthropic, vLLM, llama.cpp): a request that
repeats the previous one's first N bytes pays (and waits) only for the rest. This runs a
20-turn conversation through ``memlane serve``'s app (real HTTP, the openai SDK) for each
``retrieval.memory_placement`` and reports, per turn, the share of the previous upstream
request that the next one repeats as its exact byte prefix, and whether the recalled memories
are still in every request.

Real text: MemoryBank (MIT) user "Frank": his other days' turns are his memories (stored as
said); the conversation is his later turns, each answered with the dataset's own reply by the
scripted upstream; learning is on (each exchange's first sentence is learnt), so the memory
block changes from turn to turn as it does in use.

    python bench/prefix_cache.py [--turns 20] [--user Frank] [--protocol chat|responses|messages]
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
sys.path.insert(0, str(ROOT / "src"))

import openai  # noqa: E402

from memlane.proxy.recall import MEMORY_PREAMBLE  # noqa: E402
from memlane.server.app import create_app  # noqa: E402
from memlane.server.keys import KeyStore  # noqa: E402
from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream  # noqa: E402
from memlane.testing.live_server import LiveServer  # noqa: E402
from memlane.testing.scripted_upstream import first_sentence_facts  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "memorybank" / "memorybank_dev.json"
PLACEMENTS = ("pinned", "before_last_user", "after_system")
SYSTEM = ("You are Frank's AI companion. Be warm and concise, remember what he tells you about his life, "
          "and suggest things that fit his interests. Answer in at most three sentences, and ask a follow-up "
          "question when it helps the conversation go on.")


def exchanges(user: str) -> list[tuple[str, str]]:
    history = json.loads(DATA.read_text())[user]["history"]
    return [(e["query"], e["response"]) for day in sorted(history) for e in history[day]]


def run(protocol: str, placement: str, memories: list[str], conversation: list[tuple[str, str]], home: Path) -> list[bytes]:
    replies = dict(conversation)
    with ScriptedUpstream() as upstream:
        def answer(req: ScriptedRequest) -> Reply | None:
            learnt = first_sentence_facts(req)
            return learnt if learnt is not None else Reply.text(replies.get(req.last_user_text, "I see."))

        upstream.handler = answer
        config = {"vector_store": {"provider": "sqlite", "config": {"path": str(home / f"{protocol}-{placement}.db")}},
                  "upstream": {"base_url": upstream.url, "api_key": "k", "max_retries": 0,
                               "anthropic_base_url": upstream.anthropic_url, "anthropic_api_key": "k"},
                  "llm": {"provider": "openai", "config": {"max_retries": 0}},
                  "outbox": {"poll_seconds": 0.05},
                  "retrieval": {"memory_placement": placement}}
        app = create_app(config, keys=KeyStore(home / f"{protocol}-{placement}-keys.db"), drain_seconds=5)
        with LiveServer(app) as server:
            sdk = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
            import httpx

            httpx.post(server.url + "/v1/memories", json={"messages": memories, "user_id": "frank", "infer": False},
                       timeout=120).raise_for_status()
            history: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}] if protocol == "chat" else []
            for query, _ in conversation:
                history.append({"role": "user", "content": query})
                if protocol == "chat":
                    reply = sdk.chat.completions.create(model="m", messages=history, extra_body={"user_id": "frank"})  # type: ignore[arg-type]
                    text = reply.choices[0].message.content or ""
                elif protocol == "messages":
                    import anthropic

                    claude = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)
                    message = claude.messages.create(model="m", max_tokens=256, system=SYSTEM, messages=history,  # type: ignore[arg-type]
                                                     extra_body={"user_id": "frank"})
                    text = "".join(b.text for b in message.content if b.type == "text")
                else:
                    text = sdk.responses.create(model="m", instructions=SYSTEM, input=history,  # type: ignore[arg-type]
                                                extra_body={"user_id": "frank"}).output_text
                history.append({"role": "assistant", "content": text})
                time.sleep(0.3)  # the exchange is learnt before the next turn, as between a person's messages
        return [prompt_bytes(protocol, r.json) for r in upstream.model_requests("chat", protocol=protocol)]


def prompt_bytes(protocol: str, body: dict[str, Any]) -> bytes:
    """The request in the order the model reads it, which is what providers cache by prefix:
    chat's messages; Responses' instructions then input; Messages' system then messages (a
    request body's own field order, where the SDKs write the system prompt after the turns,
    would say nothing about the cache)."""
    if protocol == "chat":
        parts: list[Any] = [body["messages"]]
    elif protocol == "responses":
        parts = [body.get("instructions"), body["input"]]
    else:
        parts = [body.get("system"), body["messages"]]
    return json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode()


def shares(bodies: list[bytes]) -> list[float]:
    return [len(os.path.commonprefix([before, after])) / len(before) for before, after in zip(bodies, bodies[1:])]


def uncached(bodies: list[bytes]) -> int:
    """Bytes a provider computes afresh over the conversation: each request minus the prefix it
    shares with the one before (the first request is all new)."""
    return len(bodies[0]) + sum(len(after) - len(os.path.commonprefix([before, after])) for before, after in zip(bodies, bodies[1:]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--user", default="Frank")
    parser.add_argument("--protocol", choices=("chat", "responses", "messages"), default="chat")
    parser.add_argument("--out", default=None, help="default: bench/results/prefix_cache[_responses].md")
    args = parser.parse_args()
    said = exchanges(args.user)
    conversation, memories = said[-args.turns:], [q for q, _ in said[: -args.turns]]
    home = Path(tempfile.mkdtemp(prefix="memlane-prefix-"))
    results: dict[str, tuple[list[float], list[bool], list[int]]] = {}
    fresh: dict[str, int] = {}
    for placement in PLACEMENTS:
        bodies = run(args.protocol, placement, memories, conversation, home)
        assert len(bodies) == len(conversation), (placement, len(bodies))
        with_memories = [MEMORY_PREAMBLE.encode() in b for b in bodies]
        results[placement] = (shares(bodies), with_memories, [len(b) for b in bodies])
        fresh[placement] = uncached(bodies)
        print(placement, [f"{s:.2f}" for s in results[placement][0]], flush=True)

    lines = [
        "# Prompt-cache reuse by memory placement",
        "",
        f"`python bench/prefix_cache.py --turns {args.turns} --protocol {args.protocol}`: MemoryBank user {args.user!r}, "
        f"{len(memories)} memories from his "
        f"other days, then a {len(conversation)}-turn conversation of his later turns through the server (learning on).",
        "Share: the part of turn t-1's upstream request that turn t repeats as its exact byte prefix (what an "
        "exact-prefix cache reuses), the request taken in the order the model reads it (system prompt, then the "
        "turns). Memories: the recalled block is in the request.",
        "",
        "| turn | " + " | ".join(f"bytes, {p}" for p in PLACEMENTS) + " | " + " | ".join(f"share, {p}" for p in PLACEMENTS)
        + " | memories in all |",
        "|---|" + "---|" * (2 * len(PLACEMENTS)) + "---|",
    ]
    for t in range(1, len(conversation)):
        row = " | ".join(f"{results[p][0][t - 1]:.2f}" for p in PLACEMENTS)
        every = all(results[p][1][t] for p in PLACEMENTS)
        sizes = " | ".join(f"{results[p][2][t]:,}" for p in PLACEMENTS)
        lines.append(f"| {t + 1} | {sizes} | {row} | {'yes' if every else 'NO'} |")
    summary = []
    for p in PLACEMENTS:
        later = results[p][0][1:]  # turns 3..
        summary.append(f"{p} {sum(later) / max(1, len(later)):.2f} (lowest {min(later, default=0.0):.2f})")
    lines += ["", f"Turns 3-{len(conversation)}, mean share: " + "; ".join(summary) +
              f". Recalled memories in every request: {all(all(results[p][1]) for p in PLACEMENTS)}.",
              "", "Bytes sent over the conversation, and the part not in a cached prefix (what is computed and billed at the "
              "full rate; cached input costs OpenAI 10-50%, Anthropic 10% of it): "
              + "; ".join(f"{p} {sum(results[p][2]):,} sent, {fresh[p]:,} uncached" for p in PLACEMENTS) + ".",
              "", "As full-price bytes (uncached + cached x price share): "
              + "; ".join(f"at {int(rate * 100)}% for cached input: "
                          + ", ".join(f"{p} {fresh[p] + rate * (sum(results[p][2]) - fresh[p]):,.0f}" for p in PLACEMENTS)
                          for rate in (0.1, 0.25, 0.5)) + ".", ""]
    out = args.out or str(ROOT / "bench" / "results" / f"prefix_cache{'' if args.protocol == 'chat' else '_' + args.protocol}.md")
    Path(out).write_text("\n".join(lines))
    print("\n".join(lines[-2:]))


if __name__ == "__main__":
    main()
