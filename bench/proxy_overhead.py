"""What memlane adds to a chat call: the same request sent straight to the scripted upstream and
through ``Memlane`` (recall from 10k real-text memories in the scope, 100k in the store),
interleaved, with learning on.

The store holds LoCoMo dev turns recombined into unique texts (two turns joined), embedded by
the embedder under test; each request's user turn is another LoCoMo turn (distinct per request,
so nothing is served from a cache). The scripted upstream runs in its own process with
``--facts``: every exchange teaches a fact, so the background learner extracts, reconciles and
stores while the calls are timed, as in a real app.

``--store unselective``: the SYNTHETIC store of issue 22 instead (10k memories of 10 words from a
56-word vocabulary in one scope, each query term in 10-20% of it; keyword_scoring.py builds it),
each request's user turn 6 words of that vocabulary: the case where recall's cost could grow
with the matches. A floor for the embedding (short texts), not for the search.

``--server``: through ``memlane serve`` instead of the embedded client (the openai SDK pointed
at it, ``extra_body`` naming the scope), so learning runs in the server's learner process and
the added time includes the second HTTP hop a server's users pay.

A second table says where the added time goes, for all calls and for the slowest 5% and 1%:
embedded, this process's CPU (recall, placement, the outbox write, the client's glue) against the
time it waited (for the GIL while the learner's threads run, for a core); through a server, the
server's own mean recall and upstream-call times from its /metrics.

    python bench/proxy_overhead.py [--requests 300] [--embedder static|minilm] [--store real|unselective] [--server]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from typing import Any
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import openai  # noqa: E402

from memlane import Memlane  # noqa: E402
from processes import start_serve, start_upstream, stop  # noqa: E402
from server_throughput import EMBEDDERS, build_store  # noqa: E402
from soak import locomo_turns  # noqa: E402


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def latency_table(times: dict[Any, list[float]], setting: str, versus: str) -> str:
    """A markdown table of search times (ms) per setting: p50, p95, p99 and p50 as a ratio
    against the first setting (the baseline, measured in the same run)."""
    base = statistics.median(next(iter(times.values())))
    rows = [f"| {setting} | search p50 ms | p95 ms | p99 ms | p50 vs {versus} |", "|---|---|---|---|---|"]
    for name, spent in times.items():
        rows.append(f"| {name} | {statistics.median(spent):.2f} | {pct(spent, 0.95):.2f} | {pct(spent, 0.99):.2f} | "
                    f"{statistics.median(spent) / base:.2f}x |")
    return "\n".join(rows)


#: the server's own per-chat stages on its /metrics (``memlane_<stage>_duration_seconds``)
SERVER_STAGES = ("recall", "upstream")


def served_stage(url: str, stage: str, since: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float]:
    """(seconds, count) of one of the server's stage histograms, less ``since``."""
    from server_throughput import metric

    total, count = metric(url, f"memlane_{stage}_duration_seconds_sum"), metric(url, f"memlane_{stage}_duration_seconds_count")
    return total - since[0], count - since[1]


def slowest_table(added: list[float], added_cpu: list[float], parts: dict[str, list[float]],
                  stages: dict[str, tuple[float, float]]) -> str:
    """Where the added time goes, for all calls and for the slowest: what the calling process
    spent on CPU (embedded: recall, placement, outbox write and the client's own glue) against
    what it waited (for the GIL while the learner threads run, for a core, for the server), and
    the recall's parts; through a server, the server's own mean recall and upstream-call times
    (its /metrics) instead."""
    order = sorted(range(len(added)), key=added.__getitem__)
    n = len(order)
    groups = {"all calls": order, "p50-p90": order[n // 2:int(n * 0.9)], "slowest 5%": order[int(n * 0.95):],
              "slowest 1%": order[int(n * 0.99):]}

    def mean(values: list[float], picked: list[int]) -> float:
        return statistics.mean(values[i] for i in picked) if picked else float("nan")

    rows = ["| added (ms, mean of the group) | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    rows.append("| added by memlane (wall) | " + " | ".join(f"{mean(added, g):.2f}" for g in groups.values()) + " |")
    if not stages:
        waited = [a - c for a, c in zip(added, added_cpu)]
        rows.append("| of it this process's CPU | " + " | ".join(f"{mean(added_cpu, g):.2f}" for g in groups.values()) + " |")
        rows.append("| of it waiting (GIL, a core) | " + " | ".join(f"{mean(waited, g):.2f}" for g in groups.values()) + " |")
        for name, label in (("embed_ms", "recall: query embedding (wall)"), ("search_ms", "recall: search + fusion + fetch (wall)")):
            rows.append(f"| {label} | " + " | ".join(f"{mean(parts[name], g):.2f}" for g in groups.values()) + " |")
        return "\n".join(rows)
    means = {stage: (seconds * 1000 / count if count else float("nan")) for stage, (seconds, count) in stages.items()}
    return "\n".join(rows) + "\n\n" + (f"The server's own means over the same calls (/metrics): recall {means['recall']:.2f} ms, "
                                        f"upstream call {means['upstream']:.2f} ms; the rest of the added time is the second "
                                        "HTTP hop, the request's handling and the outbox write.")


class ServedChats:
    """What the loop reads of a ``Memlane`` client, for ``memlane serve``: its chats through the
    openai SDK (the scope in ``extra_body``), the recall timings and outbox from the server."""

    def __init__(self, sdk: openai.OpenAI, url: str) -> None:
        from memlane.config import MemlaneConfig

        self._sdk, self._url = sdk, url
        self.config = MemlaneConfig()
        self.chat = self
        self.completions = self
        self.memory = self
        self.stats = self
        self.last_recall_timings_ms: dict[str, float] = {}

    def create(self, *, user_id: str, **kwargs: Any) -> Any:
        return self._sdk.chat.completions.create(**kwargs, extra_body={"user_id": user_id})

    def outbox_status(self) -> dict[str, Any]:
        from server_throughput import metric

        return {"pending": int(metric(self._url, "memlane_outbox_depth"))}

    def close(self) -> None:
        self._sdk.close()


def main() -> None:
    if os.environ.get("SWITCH"):
        sys.setswitchinterval(float(os.environ["SWITCH"]))
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--embedder", choices=sorted(EMBEDDERS), default="static")
    parser.add_argument("--scope-size", type=int, default=10_000)
    parser.add_argument("--store-size", type=int, default=100_000, help="MiniLM embeds ~100 texts/s here: use 10000 with it")
    parser.add_argument("--store", choices=("real", "unselective"), default="real",
                        help="real: LoCoMo turns (default); unselective: the SYNTHETIC small-vocabulary store (static embedder)")
    parser.add_argument("--server", action="store_true",
                        help="through memlane serve (its learner process) instead of the embedded client")
    parser.add_argument("--no-learning", action="store_true", help="stop the background learner (to see its cost)")
    parser.add_argument("--alignment-weight", type=float, default=None, help="retrieval.alignment_weight (default: memlane's)")
    parser.add_argument("--with-responses", action="store_true",
                        help="also time the Responses API (direct and through Memlane), interleaved with chat, same questions")
    parser.add_argument("--out", default=None, help="default: bench/results/proxy_overhead[_minilm][_responses].md")
    args = parser.parse_args()
    suffix = ("" if args.embedder == "static" else "_" + args.embedder) + ("_responses" if args.with_responses else "") \
        + ("_unselective" if args.store == "unselective" else "") + ("_server" if args.server else "")
    out = Path(args.out or ROOT / "bench" / "results" / f"proxy_overhead{suffix}.md")
    workdir = Path(tempfile.mkdtemp(prefix="memlane-proxy-"))
    db = workdir / "proxy.db"
    user = "alice"
    if args.store == "unselective":
        from keyword_scoring import unselective_store

        started = time.perf_counter()
        turns, user = unselective_store(db, args.scope_size), "shop"
        args.store_size = args.scope_size
        print(f"loaded {args.scope_size:,} SYNTHETIC memories in {time.perf_counter() - started:.0f}s", flush=True)
    else:
        turns = locomo_turns()
        load_s = build_store(db, EMBEDDERS[args.embedder], turns, args.scope_size, args.store_size)
        print(f"loaded {args.store_size:,} memories in {load_s:.0f}s", flush=True)
    up, upstream_url = start_upstream("--facts")
    try:
        config = {"vector_store": {"provider": "sqlite", "config": {"path": str(db)}}, "embedder": EMBEDDERS[args.embedder],
                  "upstream": {"base_url": upstream_url, "api_key": "k", "max_retries": 0}}
        if args.alignment_weight is not None:
            config["retrieval"] = {"alignment_weight": args.alignment_weight}
        serve = None
        if args.server:
            if args.no_learning or args.with_responses:
                parser.error("--server times chat with learning on only")
            import json

            config_file = workdir / "serve.json"
            config_file.write_text(json.dumps(config))
            serve, serve_url = start_serve(config_file, workdir / "home")
            client = ServedChats(openai.OpenAI(base_url=serve_url + "/v1", api_key="k", max_retries=0), serve_url)
        else:
            client = Memlane(config=config)
        if args.no_learning:
            client._backend.learner.stop()
        direct = openai.OpenAI(base_url=upstream_url, api_key="k", max_retries=0)
        rng = random.Random(11)
        questions = list(dict.fromkeys(rng.choice(turns) for _ in range(args.requests * 3)))[: args.requests + 5]
        for text in questions[:5]:  # warm up: model load, connections, the scope's vector cache
            messages = [{"role": "user", "content": text}]
            direct.chat.completions.create(model="m", messages=messages)
            client.chat.completions.create(model="m", messages=messages, user_id=user)
        if serve is not None:  # the learner process is up and learning before the timing starts
            from server_throughput import drained

            drained(serve_url)
        direct_ms, through_ms, added_ms = [], [], []
        added_cpu_ms: list[float] = []  # this process's CPU of the call through memlane minus the direct one's
        stages_before = {stage: served_stage(serve_url, stage) for stage in SERVER_STAGES} if serve is not None else {}
        responses_direct_ms, responses_through_ms, responses_added_ms = [], [], []
        parts: dict[str, list[float]] = {"embed_ms": [], "search_ms": [], "inject_ms": []}
        for text in questions[5:]:
            messages = [{"role": "user", "content": text}]
            c0, t0 = time.thread_time(), time.perf_counter()
            direct.chat.completions.create(model="m", messages=messages)
            c1, t1 = time.thread_time(), time.perf_counter()
            client.chat.completions.create(model="m", messages=messages, user_id=user)
            c2, t2 = time.thread_time(), time.perf_counter()
            added_cpu_ms.append(((c2 - c1) - (c1 - c0)) * 1000)
            direct_ms.append((t1 - t0) * 1000)
            through_ms.append((t2 - t1) * 1000)
            added_ms.append(through_ms[-1] - direct_ms[-1])
            for name in parts:
                parts[name].append(client.stats.last_recall_timings_ms.get(name, 0.0))
            if args.with_responses:
                t0 = time.perf_counter()
                direct.responses.create(model="m", input=text)
                t1 = time.perf_counter()
                client.responses.create(model="m", input=text, user_id=user)
                t2 = time.perf_counter()
                responses_direct_ms.append((t1 - t0) * 1000)
                responses_through_ms.append((t2 - t1) * 1000)
                responses_added_ms.append(responses_through_ms[-1] - responses_direct_ms[-1])
        stages = {stage: served_stage(serve_url, stage, since=stages_before[stage]) for stage in SERVER_STAGES} if serve is not None else {}
        learnt = client.memory.outbox_status()
        alignment_weight = client.config.retrieval.alignment_weight
        client.close()
    finally:
        stop([p for p in (up, serve) if p is not None])

    def row(name: str, values: list[float]) -> str:
        return f"| {name} | {statistics.median(values):.2f} | {pct(values, 0.95):.2f} | {pct(values, 0.99):.2f} |"

    lines = [
        f"{len(added_ms)} requests, interleaved; embedder {args.embedder}; {args.scope_size:,}"
        f" {'SYNTHETIC small-vocabulary' if args.store == 'unselective' else 'real-text'} memories in the scope,"
        f" {args.store_size:,} in the store; limit 10; term alignment weight {alignment_weight};"
        f" {'through memlane serve (learner process)' if args.server else 'embedded client'};"
        f" learning {'off' if args.no_learning else 'on'} (outbox when timing ended:"
        f" {learnt['pending']} pending).",
        "",
        "| measure (ms) | p50 | p95 | p99 |",
        "|---|---|---|---|",
        row("direct to upstream", direct_ms),
        row("through Memlane", through_ms),
        row("**added by memlane** (paired difference)", added_ms),
    ] + ([] if args.server else [  # (a server's recall timings are on its /metrics, not its answers)
        row("  of which query embedding", parts["embed_ms"]),
        row("  of which store search + fusion + fetch", parts["search_ms"]),
        row("  of which injection", parts["inject_ms"]),
    ])
    lines += ["", slowest_table(added_ms, added_cpu_ms, parts, stages)]
    if args.with_responses:
        lines += [row("Responses API: direct to upstream", responses_direct_ms), row("Responses API: through Memlane", responses_through_ms),
                  row("**Responses API: added by memlane**", responses_added_ms), "",
                  f"Responses minus chat, added p50: {statistics.median(responses_added_ms) - statistics.median(added_ms):+.2f} ms "
                  "(same questions, same run, interleaved)."]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
