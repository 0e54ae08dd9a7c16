"""``memlane serve`` learns in learner processes beside it (``server.learner: process``): started
and stopped with the server, restarted after a kill -9 without losing or repeating an exchange,
picking up projects created later, and still reported by /metrics and the inspector.

Real processes, real HTTP, the scripted upstream; the gym counter (tests/engine/test_concurrency)
makes "learnt exactly once" visible: N exchanges leave "Gym visits: N", one commit building on
the last.
"""

from __future__ import annotations

import html
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from memlane.testing import Reply, ScriptedUpstream
from tests.engine.test_concurrency import gym_counter
from tests.scenarios import MULTI_PROCESS_BACKENDS
from tests.server.test_multi_instance import free_port


def eventually(check: Callable[[], Any], what: str, seconds: float = 60) -> Any:
    """``check()``'s first truthy answer (no timing asserted: the deadline only ends a hung test)."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def learner_pids(server_pid: int) -> list[int]:
    """The learner processes whose parent is ``server_pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == server_pid and b"memlane.server.learner_process" in command:
            found.append(int(entry.name))
    return sorted(found)


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


class Served:
    def __init__(self, proc: subprocess.Popen[str], url: str, env: dict[str, str], config: Path) -> None:
        self.proc, self.url, self.env, self.config = proc, url, env, config

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "memlane.cli", "--config", str(self.config), *args], env=self.env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


@pytest.fixture
def serve(tmp_path: Path, upstream: ScriptedUpstream, fast_embedder_config: dict[str, Any],
          store_config: Any) -> Iterator[Callable[..., Any]]:
    upstream.handler = lambda req: Reply.text("Good workout!") if req.stage == "chat" else gym_counter(req)
    started: list[subprocess.Popen[str]] = []

    @contextmanager
    def run(*args: str, server: dict[str, Any] | None = None, outbox: dict[str, Any] | None = None,
            seed: bool = True) -> Iterator[Served]:
        config = tmp_path / "memlane.json"
        config.write_text(json.dumps({
            "vector_store": store_config(tmp_path / "served.db"),
            "embedder": fast_embedder_config,
            "upstream": {"base_url": upstream.url, "api_key": "k", "max_retries": 0},
            "llm": {"provider": "openai", "config": {"max_retries": 0}},
            "outbox": {"retry_base_seconds": 0.05, "poll_seconds": 0.05, **(outbox or {})},
            "server": {"learner": "process", "learner_rescan_seconds": 0.2, "drain_seconds": 5, **(server or {})},
        }))
        env = {**os.environ, "MEMLANE_HOME": str(tmp_path / "home")}
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "memlane.cli", "--config", str(config), "serve", "--port", str(port),
                                 "--log-level", "warning", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        started.append(proc)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else "the server died"
            try:
                return httpx.get(url + "/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(ready, "the server did not start")
        served = Served(proc, url, env, config)
        if seed:
            httpx.post(url + "/v1/memories", json={"messages": "Gym visits: 0", "user_id": "alice", "infer": False}).raise_for_status()
        yield served

    yield run
    for proc in started:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def page_with(url: str, needle: str, headers: dict[str, str] | None = None) -> Callable[[], str | None]:
    """A check for ``eventually``: the page (HTML entities unescaped) once it contains ``needle``."""

    def check() -> str | None:
        page = html.unescape(httpx.get(url, headers=headers).text)
        return page if needle in page else None

    return check


def chat(url: str, n: int, headers: dict[str, str] | None = None) -> int:
    return httpx.post(url + "/v1/chat/completions", timeout=30, headers=headers, json={
        "model": "m", "user_id": "alice", "messages": [{"role": "user", "content": f"I went to the gym again ({n})"}]}).status_code


def visits(url: str, headers: dict[str, str] | None = None) -> list[str]:
    return [m["memory"] for m in httpx.get(url + "/v1/memories", params={"user_id": "alice"}, headers=headers).json()["results"]]


@pytest.mark.slow
@pytest.mark.parametrize("backend", MULTI_PROCESS_BACKENDS, indirect=True)
def test_the_learner_process_starts_with_the_server_and_what_it_learns_is_shown(serve: Any) -> None:
    with serve() as server:
        (learner,) = eventually(lambda: learner_pids(server.proc.pid), "no learner process beside the server")
        assert chat(server.url, 1) == 200
        eventually(lambda: visits(server.url) == ["Gym visits: 1"], "the chat was not learnt")
        assert learner_pids(server.proc.pid) == [learner]

        metrics = eventually(page_with(server.url + "/metrics", 'memlane_learned_total{project="default"} 1.0'), "/metrics does not count it")
        assert 'memlane_learning_llm_calls_total{project="default"} 2.0' in metrics  # one extraction, one reconcile
        assert 'memlane_outbox_depth{project="default"} 0' in metrics
        eventually(page_with(server.url + "/metrics", 'memlane_learn_duration_seconds_count{project="default"} 1.0'),
                   "the learn timing does not reach the histogram")
        overview = httpx.get(server.url + "/ui").text
        assert "learnt since the server started: 1 exchanges" in overview
        chats = eventually(page_with(server.url + "/ui/chats", "Gym visits: 0 → Gym visits: 1"), "/ui/chats does not show what was learnt")
        assert "I went to the gym again (1)" in chats and "waiting in the outbox" not in chats


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_with_workers_the_learner_processes_are_started_once(serve: Any) -> None:
    with serve("--workers", "2", server={"learner_processes": 2}) as server:
        eventually(lambda: len(learner_pids(server.proc.pid)) == 2, "two learner processes, started by the server")
        with ThreadPoolExecutor(4) as pool:
            assert set(pool.map(lambda n: chat(server.url, n), range(8))) == {200}
        eventually(lambda: visits(server.url) == ["Gym visits: 8"], "every exchange learnt once")
        assert len(learner_pids(server.proc.pid)) == 2, "not one per worker"
        learnt = eventually(lambda: httpx.get(server.url + "/metrics").text.count('memlane_learned_total{project="default"} 8.0'),
                            "each worker reports both learner processes' count")
        assert learnt == 1


@pytest.mark.slow
@pytest.mark.parametrize("backend", MULTI_PROCESS_BACKENDS, indirect=True)
def test_a_learner_killed_mid_load_is_restarted_and_every_exchange_is_learnt_exactly_once(serve: Any, upstream: ScriptedUpstream) -> None:
    with serve() as server:
        (first,) = eventually(lambda: learner_pids(server.proc.pid), "no learner process")
        with ThreadPoolExecutor(6) as pool:
            answered = pool.map(lambda n: chat(server.url, n), range(30))
            eventually(lambda: upstream.chat_requests("extract"), "the learner never started learning")
            os.kill(first, signal.SIGKILL)
            assert set(answered) == {200}
        restarted = eventually(lambda: [p for p in learner_pids(server.proc.pid) if p != first], "the learner was not restarted")
        assert len(restarted) == 1
        eventually(lambda: visits(server.url) == ["Gym visits: 30"], "every exchange learnt exactly once")
        memory_id = httpx.get(server.url + "/v1/memories", params={"user_id": "alice"}).json()["results"][0]["id"]
        history = httpx.get(server.url + f"/v1/memories/{memory_id}/history").json()
        counts = [int(e["new_memory"].rsplit(" ", 1)[1]) for e in history]
        assert counts == sorted(set(counts)) and counts[-1] == 30, "each commit built on the last; none repeated"
        metrics = eventually(page_with(server.url + "/metrics", 'memlane_outbox_depth{project="default"} 0'), "the outbox emptied")
        assert "memlane_learned" in metrics


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_stopping_the_server_stops_its_learner_and_a_killed_server_leaves_none(serve: Any) -> None:
    with serve() as server:
        (learner,) = eventually(lambda: learner_pids(server.proc.pid), "no learner process")
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(60) == 0, "a clean stop, which stopped its learner itself (SIGTERM, then wait)"
        assert gone(learner), "the learner process outlived its server"
    with serve() as server:
        (learner,) = eventually(lambda: learner_pids(server.proc.pid), "no learner process")
        server.proc.kill()
        server.proc.wait(10)
        eventually(lambda: gone(learner), "the learner process outlived a killed server")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_project_created_after_the_server_started_is_learnt(serve: Any) -> None:
    with serve() as server:
        eventually(lambda: learner_pids(server.proc.pid), "no learner process")
        key = server.cli("keys", "create", "--project", "acme")
        headers = {"Authorization": f"Bearer {key}"}
        add = httpx.post(server.url + "/v1/memories", headers=headers, json={"messages": "Gym visits: 0", "user_id": "alice", "infer": False})
        assert add.status_code == 200, add.text
        assert chat(server.url, 1, headers) == 200
        eventually(lambda: visits(server.url, headers) == ["Gym visits: 1"], "the new project's chat was not learnt")
        eventually(page_with(server.url + "/metrics", 'memlane_learned_total{project="acme"} 1.0', headers), "/metrics counts acme's exchange")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_server_killed_mid_load_loses_nothing_and_its_successor_learns_each_exchange_once(
        serve: Any, upstream: ScriptedUpstream, tmp_path: Path) -> None:
    import sqlite3

    with serve() as server:
        eventually(lambda: learner_pids(server.proc.pid), "no learner process")
        with ThreadPoolExecutor(6) as pool:
            sent = [pool.submit(chat, server.url, n) for n in range(40)]
            eventually(lambda: len(upstream.chat_requests("extract")) >= 2, "the learner never started learning")
            server.proc.kill()  # the server, with chats in flight and exchanges being learnt
            server.proc.wait(10)
            answered = sum(1 for f in sent if not f.exception() and f.result() == 200)
    with serve(seed=False) as again:  # a new server on the same store learns what the old one left
        def settled() -> int | None:
            with sqlite3.connect(tmp_path / "served.db") as db:
                waiting = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
                learnt = db.execute("SELECT count(*) FROM outbox_learnt").fetchone()[0]
            return learnt if waiting == 0 else None

        learnt = eventually(settled, "the outbox never emptied")
        (text,) = visits(again.url)
        assert text == f"Gym visits: {learnt}", "each exchange that reached the outbox was learnt exactly once"
        assert answered <= learnt <= 40, "every answered chat was learnt from"


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_memlane_learn_drains_the_outboxes_with_no_server_and_stops_on_ctrl_c(
        tmp_path: Path, upstream: ScriptedUpstream, fast_embedder_config: dict[str, Any], store_config: Any) -> None:
    from memlane import Memory

    upstream.handler = gym_counter
    config = {"vector_store": store_config(tmp_path / "alone.db"), "embedder": fast_embedder_config,
              "upstream": {"base_url": upstream.url, "api_key": "k", "max_retries": 0},
              "llm": {"provider": "openai", "config": {"max_retries": 0}}, "outbox": {"poll_seconds": 0.05}}
    path = tmp_path / "alone.json"
    path.write_text(json.dumps(config))
    with Memory(config) as memory:  # exchanges queued by a server that is gone
        memory.add("Gym visits: 0", user_id="alice", infer=False)
        for n in range(3):
            memory.enqueue({"scope": {"user_id": "alice"}, "model": "m",
                            "messages": [{"role": "user", "content": f"I went to the gym again ({n})"}]})
    env = {**os.environ, "MEMLANE_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "memlane.cli", "--config", str(path), "learn", "--log-level", "warning"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def learnt() -> bool:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else "memlane learn died"
            with Memory(config) as memory:
                return [m["memory"] for m in memory.get_all(user_id="alice")["results"]] == ["Gym visits: 3"]

        eventually(learnt, "memlane learn did not learn the queued exchanges")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_with_learner_thread_the_server_learns_in_its_own_threads(serve: Any) -> None:
    with serve(server={"learner": "thread"}) as server:
        assert chat(server.url, 1) == 200
        eventually(lambda: visits(server.url) == ["Gym visits: 1"], "the chat was not learnt")
        assert learner_pids(server.proc.pid) == []
        eventually(page_with(server.url + "/ui/chats", "Gym visits: 0 → Gym visits: 1"), "/ui/chats shows what was learnt")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("learner", ["process", "thread"])
def test_a_caller_waiting_for_its_exchange_is_not_kept_waiting_by_batch_wait_seconds(serve: Any, learner: str) -> None:
    """A short batch is held back for more of its scope only while nobody waits: ``GET
    /v1/exchanges/{id}?wait=`` (what the hosted client's flush asks) hurries the learner, in
    the server's threads or in its learner process."""
    def chat_and_wait(n: int) -> float:
        answer = httpx.post(server.url + "/v1/chat/completions", timeout=30, json={
            "model": "m", "user_id": "alice", "messages": [{"role": "user", "content": f"I went to the gym again ({n})"}]}).json()
        asked = time.monotonic()
        state = httpx.get(f"{server.url}/v1/exchanges/{answer['metadata']['exchange_id']}", params={"wait": 30}, timeout=40).json()
        assert state["status"] == "learnt"
        return time.monotonic() - asked

    with serve(server={"learner": learner}, outbox={"batch_wait_seconds": 10.0}) as server:
        chat_and_wait(1)  # the learner is up and has its store open (a loaded machine takes seconds)
        took = chat_and_wait(2)
        assert took < 5, f"learnt {took:.1f} s after being asked for: the 10 s wait was not cut short"
        assert visits(server.url) == ["Gym visits: 2"]
