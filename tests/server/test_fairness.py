"""One project cannot stall another: each project's memory work runs in its own bounded lanes
(a few threads for quick calls, a few for calls that wait on the memory LLM, a bounded queue
behind each), so a project that floods the server with slow ``infer`` adds gets 429s, while
another project's reads and the health checks stay fast."""

from __future__ import annotations

import functools
import statistics
import threading
import time
from pathlib import Path
from typing import Callable

import httpx

from memlane.server.keys import KeyStore
from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.threads import run_in_threads, wait_until

#: how long the memory LLM takes for each extraction and reconcile call
SLOW = 1.5


def slow_memory_llm(req: ScriptedRequest, delay: float = SLOW) -> Reply:
    if req.stage == "extract":
        return Reply.json({"facts": ["Likes green tea"]}, delay=delay)
    if req.stage == "reconcile":
        return Reply.json({"memory": [{"id": "100", "text": "Likes green tea", "event": "ADD"}]}, delay=delay)
    return Reply.text("ok")


def two_projects(tmp_path: Path) -> tuple[KeyStore, dict[str, str], dict[str, str]]:
    keys = KeyStore(tmp_path / "keys.db")
    key_a, _ = keys.create("acme")
    key_b, _ = keys.create("globex")
    return keys, {"Authorization": f"Bearer {key_a}"}, {"Authorization": f"Bearer {key_b}"}


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def test_forty_slow_infer_adds_of_one_project_do_not_slow_another_projects_reads(
        make_server: Callable[..., LiveServer], tmp_path: Path, upstream: ScriptedUpstream) -> None:
    keys, a, b = two_projects(tmp_path)
    # small lanes, so B's flood is mostly refused and the test stays short
    server = make_server(keys=keys, server={"project_slow_threads": 2, "project_queue": 4})
    upstream.handler = slow_memory_llm
    with httpx.Client(base_url=server.url, timeout=60) as http:
        # both projects loaded, and A has something to read
        http.post("/v1/memories", headers=a, json={"messages": "I live in Lisbon", "user_id": "alice", "infer": False}).raise_for_status()
        http.get("/v1/memories", headers=b, params={"user_id": "bob"}).raise_for_status()
        http.get("/readyz").raise_for_status()  # its first answer opens its probe thread's connection (~70 ms idle)

        answers: list[httpx.Response] = []

        def add_slowly() -> None:
            with httpx.Client(base_url=server.url, timeout=120) as own:
                answers.append(own.post("/v1/memories", headers=b, json={"messages": "I like green tea", "user_id": "bob"}))

        flood = threading.Thread(target=lambda: run_in_threads(add_slowly, 40, 120))
        flood.start()
        try:
            assert wait_until(lambda: len(upstream.chat_requests("extract")) >= 2, 10), "B's adds reached the memory LLM"
            # measured once the burst is over (the 40 client threads live in this process and share its
            # GIL with the server: a read timed while they were all connecting measured the test, not the server)
            assert wait_until(lambda: sum(answer.status_code == 429 for answer in list(answers)) >= 34, 30), "B's flood was refused"
            reads, ready = [], []
            for _ in range(40):
                started = time.perf_counter()
                r = http.get("/v1/memories", headers=a, params={"user_id": "alice"})
                reads.append(time.perf_counter() - started)
                assert r.status_code == 200 and r.json()["results"][0]["memory"] == "I live in Lisbon"
                started = time.perf_counter()
                assert http.get("/readyz").status_code == 200
                ready.append(time.perf_counter() - started)
                time.sleep(0.02)
            in_flight = len(upstream.chat_requests()) < 12  # (2 + 4 admitted adds) x 2 calls each
        finally:
            flood.join(180)
    assert in_flight, "the measurement ran while B's adds were still in flight"
    assert p99(reads) < 0.2, f"A's reads p50 {statistics.median(reads):.3f}s p99 {p99(reads):.3f}s while B is busy"
    assert p99(ready) < 0.2, f"/readyz p99 {p99(ready):.3f}s while B is busy"
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] * 6 + [429] * 34, statuses  # 2 running + 4 queued were taken
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert refused.json()["error"]["type"] == "rate_limit_error" and refused.json()["error"]["code"] == "project_busy"
    # an estimate from the lane's measured call times (lanes.retry_after), so only its bounds are fixed:
    # whole seconds, at least 1, at most 60 (a non-integer, 0 or a minutes-long wait fails here)
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert len(http_get_all(server.url, b)) == 1, "the admitted adds were all learnt (one fact, deduplicated)"


def http_get_all(url: str, headers: dict[str, str]) -> list[dict[str, object]]:
    return list(httpx.get(url + "/v1/memories", headers=headers, params={"user_id": "bob"}).json()["results"])


def test_a_full_slow_lane_refuses_at_once_on_every_way_in_and_holds_no_quick_thread(
        make_server: Callable[..., LiveServer], tmp_path: Path, upstream: ScriptedUpstream) -> None:
    keys, a, b = two_projects(tmp_path)
    server = make_server(keys=keys, server={"project_slow_threads": 1, "project_queue": 1})
    # the running add must still be running when the refused one is sent, after the "left" add's
    # 0.5 s and a busy machine's delays
    upstream.handler = functools.partial(slow_memory_llm, delay=4.0)
    tea = {"messages": "I like green tea", "user_id": "bob"}
    results: dict[str, int] = {}

    def add(name: str, headers: dict[str, str], timeout: float = 60) -> None:
        try:
            results[name] = httpx.post(server.url + "/v1/memories", headers=headers, json=tea, timeout=timeout).status_code
        except httpx.ReadTimeout:
            results[name] = 0  # the caller gave up and left

    running = threading.Thread(target=add, args=("running", b))
    running.start()
    assert wait_until(lambda: len(upstream.chat_requests("extract")) == 1, 10)
    lanes = server.server.config.app.state.projects.lanes  # (waiting on the lane itself, not a fixed sleep: a busy CI machine took longer)
    add("left", b, timeout=0.5)  # queued behind it, then gone: its place in the queue is given back
    # once the server has noticed: until then "left" still holds the place, and a fresh-clone run
    # saw the next add refused and the "must be refused" one take the place when it was freed
    assert wait_until(lambda: lanes.status("globex").get("slow_queued") == 0, 10), lanes.status("globex")
    queued = threading.Thread(target=add, args=("queued", b))
    queued.start()
    assert wait_until(lambda: lanes.status("globex").get("slow_queued") == 1, 10), lanes.status("globex")

    refused = httpx.post(server.url + "/v1/memories", headers=b, json=tea)
    assert refused.status_code == 429 and refused.headers["retry-after"].isdigit(), refused.text
    assert "server.project_slow_threads" in refused.json()["error"]["message"]
    mem0 = httpx.post(server.url + "/v3/memories/add/", headers={"Authorization": b["Authorization"].replace("Bearer", "Token")},
                      json={"messages": [{"role": "user", "content": "I like tea"}], "user_id": "bob"})
    assert mem0.status_code == 429 and mem0.json()["error"]["type"] == "rate_limit_error"

    started = time.perf_counter()  # B's own quick calls are not behind its slow ones
    assert httpx.post(server.url + "/v1/memories", headers=b, json={**tea, "infer": False}).status_code == 200
    assert httpx.get(server.url + "/v1/memories", headers=b, params={"user_id": "bob"}).status_code == 200
    assert time.perf_counter() - started < 1
    add("other project", a)  # A's slow lane is its own
    running.join(30)
    queued.join(30)
    assert results == {"running": 200, "left": 0, "queued": 200, "other project": 200}
