"""Memory-LLM calls per exchange under sustained load, one exchange at a time against batches
(``outbox.batch_size``; issue 22 item 2's target: <= 0.5).

Exchanges arrive at ``--rate`` per second spread over ``--users`` scopes (each scope holds one
memory, so every exchange with a fact is reconciled) while a learner (2 workers) works through
them; the scripted memory model answers each call after ``--delay`` seconds (one fact per
exchange). Reports the calls per exchange, what was learnt while the load ran, and how long the
outbox took to drain after it. Writes bench/results/learning_calls.md.

    .venv/bin/python bench/learning_calls.py                 # ~2 min
    .venv/bin/python bench/learning_calls.py --rate 40 --seconds 15
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from memlane import Memory
from memlane.config import OutboxConfig
from memlane.engine.learner import Learner
from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream

RESULTS = Path(__file__).parent / "results" / "learning_calls.md"


def one_fact_each(delay: float):  # type: ignore[no-untyped-def]
    """Each exchange's user turn is its fact; reconcile adds every new fact."""
    def answer(req: ScriptedRequest) -> Reply:
        if req.stage == "extract":
            said = [next(text for role, text in turns if role == "user") for turns in req.exchanges]
            if len(said) == 1:
                return Reply.json({"facts": said}, delay=delay)
            return Reply.json({"exchanges": [{"exchange": n, "facts": [t]} for n, t in enumerate(said, 1)]}, delay=delay)
        facts = req.reconcile_payload["new_facts"]
        return Reply.json({"memory": [{"id": "new", "text": f, "event": "ADD", "old_memory": ""} for f in facts]}, delay=delay)
    return answer


def run(up: ScriptedUpstream, batch_size: int, rate: float, users: int, seconds: float) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp())
    memory = Memory({
        "vector_store": {"provider": "sqlite", "config": {"path": str(folder / "memlane.db")}},
        "embedder": {"provider": "openai", "config": {"base_url": up.url, "api_key": "k", "model": "scripted-embedding", "max_retries": 0}},
        "llm": {"provider": "openai", "config": {"base_url": up.url, "api_key": "k", "model": "scripted-model", "max_retries": 0}},
    })
    try:
        for user in range(users):
            memory.add(f"User {user} has a cat", user_id=f"u{user}", infer=False)
        learner = Learner(memory, OutboxConfig(workers=2, batch_size=batch_size, poll_seconds=0.05, yield_seconds=0))
        learner.start()
        started, sent = time.monotonic(), 0
        while time.monotonic() - started < seconds:
            memory.enqueue({"scope": {"user_id": f"u{sent % users}"}, "messages": [{"role": "user", "content": f"Likes thing {sent}"}]})
            sent += 1
            time.sleep(max(0.0, started + sent / rate - time.monotonic()))
        during = learner.status()["exchanges_learnt"]
        ended = time.monotonic()
        assert learner.flush(timeout=600)
        drained = time.monotonic() - ended
        status = learner.status()
        learner.stop()
        return {"sent": sent, "learnt_during": during, "calls": status["llm_calls"], "learnt": status["exchanges_learnt"],
                "batches": status["batches"], "drain_s": drained}
    finally:
        memory.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="exchanges per second")
    parser.add_argument("--users", type=int, default=8, help="scopes the exchanges are spread over")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long the load runs")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds the memory model takes per call")
    args = parser.parse_args()
    lines = [f"# Memory-LLM calls per exchange ({args.rate:g} exchanges/s over {args.users} scopes for {args.seconds:g} s,"
             f" {args.delay * 1000:g} ms per model call, 2 learner workers)", "",
             "| batch_size | exchanges | learnt during the load | LLM calls | calls per exchange | batches | drain after the load s |",
             "|---|---|---|---|---|---|---|"]
    with ScriptedUpstream() as up:
        up.handler = one_fact_each(args.delay)
        for batch_size in (1, 8):
            r = run(up, batch_size, args.rate, args.users, args.seconds)
            lines.append(f"| {batch_size} | {r['sent']:.0f} | {r['learnt_during']:.0f} | {r['calls']:.0f} | {r['calls'] / r['learnt']:.2f}"
                         f" | {r['batches']:.0f} | {r['drain_s']:.1f} |")
            print(lines[-1], flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
