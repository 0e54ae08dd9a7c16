"""Where a served chat's CPU goes: per-stage milliseconds of CPU per request, measured on the
running ``memlane serve`` under load (used by ``server_throughput.py --sustained``).

Method. Two measurements over the same load window:

1. Real CPU, from the kernel: user + system seconds (``psutil``, i.e. ``/proc/<pid>/stat`` and
   ``/proc/<pid>/task/<tid>/stat``) before and after the load, of the server process(es) (with
   ``--workers``, every worker) split by thread: the main thread, which runs the event loop
   (HTTP, memlane's request handling, the openai SDK's upstream call), and the others (the
   thread pool: recall and the outbox write; the store's and metrics' own threads); of each
   learner process beside the server; of the scripted upstream. Server CPU / requests answered
   is the request path's total ms of CPU per request; learner CPU / exchanges learnt during the
   load is learning's, per exchange.
2. The split inside each thread kind, from ``py-spy record --nonblocking --pid <server>``
   (``--subprocesses`` with workers) sampling every thread at ``--rate`` Hz during the load,
   idle threads left out. Each sample's stack goes to the first stage that matches, in this
   order: recall (``EmbeddedBackend.recall``), outbox write (``EmbeddedBackend.learn``),
   upstream call (``ChatProtocol.asend``: the openai SDK and httpx up to the answer's model),
   request handling (memlane's own glue: the route, auth, limits, metrics, ``parse_call``,
   ``prepare`` (placing the memories), the answer's metadata), HTTP (uvicorn, h11, starlette,
   fastapi, pydantic: request parse, middleware, response), and "event loop, threads" for the
   rest (asyncio's own loop, thread-pool hand-offs). A stage's ms per request is its thread
   kind's CPU per request times the stage's share of that kind's samples.

Caveat: py-spy counts a thread as busy while it is runnable, also when the machine's other
work keeps it off a core, so on a loaded machine the shares lean towards code that runs long
stretches; the per-thread totals are the kernel's and exact. ``pip install py-spy`` (into any
venv; /tmp/pyspy-venv is looked in); without it the totals are still reported.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

#: (stage, frames that mark it): the first stage one of whose markers is in a stack takes the sample
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("recall", ("recall (memlane/proxy/embedded.py", "search_hits (memlane/engine")),
    ("outbox write", ("learn (memlane/proxy/embedded.py", "enqueue (memlane/")),
    ("upstream call", ("asend (memlane/proxy/protocols", "openai/_base_client.py", "openai/resources/")),
    ("request handling", ("parse_call (memlane/", "prepare (memlane/", "answer (memlane/", "recalled (memlane/",
                          "memlane/server/routes_openai.py", "memlane/proxy/fields.py", "memlane/server/limits.py",
                          "memlane/server/auth.py", "memlane/server/metrics.py", "memlane/server/browser_guard.py")),
    ("HTTP", ("uvicorn/", "h11/", "httptools", "starlette/", "fastapi/", "pydantic/")),
]
OTHER = "event loop, threads"
ORDER = [name for name, _ in STAGES] + [OTHER]


def pyspy() -> str | None:
    """The py-spy binary: on PATH, or in /tmp/pyspy-venv (``pip install py-spy`` there)."""
    return shutil.which("py-spy") or next((str(p) for p in [Path("/tmp/pyspy-venv/bin/py-spy")] if p.exists()), None)


def stage_of(stack: str) -> str:
    for name, markers in STAGES:
        if any(m in stack for m in markers):
            return name
    return OTHER


#: the thread a stack ran on: the event loop (the process's main thread) or another (the pool's)
LOOP, POOL = "loop", "pool"


def thread_of(stack: str) -> str:
    return POOL if stack.startswith("Thread._bootstrap") or ";Thread._bootstrap " in stack else LOOP


def read_raw(path: Path) -> Counter[tuple[str, str]]:
    """Samples per (thread kind, stage) from py-spy's raw (collapsed) output: ``frame;frame;... count`` lines."""
    counts: Counter[tuple[str, str]] = Counter()
    if not path.exists():
        return counts
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit() and "learner_process" not in stack:  # --subprocesses: the learners are counted apart
            counts[(thread_of(stack), stage_of(stack))] += int(n)
    return counts


def cpu_seconds(pid: int) -> float:
    try:
        t = psutil.Process(pid).cpu_times()
        return float(t.user + t.system)
    except psutil.Error:
        return 0.0


def thread_seconds(pids: list[int]) -> dict[str, float]:
    """CPU seconds so far of the processes' main threads (the event loop) and of their other threads."""
    out = {LOOP: 0.0, POOL: 0.0}
    for pid in pids:
        try:
            for t in psutil.Process(pid).threads():
                out[LOOP if t.id == pid else POOL] += t.user_time + t.system_time
        except psutil.Error:
            pass
    return out


class Sampler:
    """py-spy on one pid for a fixed time, started beside a load; ``counts()`` once it ended."""

    def __init__(self, pid: int, seconds: float, out: Path, rate: int = 200, subprocesses: bool = False) -> None:
        self.out = out
        binary = pyspy()
        self.proc: subprocess.Popen[bytes] | None = None
        if binary is not None:
            self.proc = subprocess.Popen([binary, "record", "--nonblocking", "--pid", str(pid), "--rate", str(rate),
                                          "--duration", str(max(1, int(seconds))), "--format", "raw", "--output", str(out),
                                          *(["--subprocesses"] if subprocesses else [])],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def counts(self) -> Counter[str]:
        if self.proc is not None:
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return read_raw(self.out)


def split_ms(threads_s: dict[str, float], requests: float, counts: Counter[tuple[str, str]]) -> dict[str, Any]:
    """ms of CPU per request per stage (and the total): each thread kind's CPU (the kernel's)
    split among the stages by that kind's samples."""
    out: dict[str, Any] = {"server_ms": sum(threads_s.values()) * 1000 / requests if requests else float("nan"),
                           "samples": sum(counts.values()), "loop_ms": threads_s[LOOP] * 1000 / requests if requests else float("nan")}
    for name in ORDER:
        out[name] = 0.0
    for kind in (LOOP, POOL):
        total = sum(n for (k, _), n in counts.items() if k == kind)
        for name in ORDER:
            out[name] += threads_s[kind] * 1000 / requests * counts[(kind, name)] / total if total and requests else 0.0
    return out
