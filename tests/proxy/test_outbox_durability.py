"""A crash between the answer and the learning loses nothing and learns nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from memlane import Memlane
from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream
from tests.scenarios import MULTI_PROCESS_BACKENDS
from tests.scenarios import client_config, restaurant_llm

CHILD = """
import json, sys, time
from memlane import Memlane
client = Memlane(config=json.loads(sys.argv[1]))
resp = client.chat.completions.create(messages=[{"role": "user", "content": "Note that I'm allergic to cheese."}],
                                      model="gpt-4.1-nano", user_id="alice")
print("ANSWERED", resp.choices[0].message.content, flush=True)
time.sleep(120)
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", MULTI_PROCESS_BACKENDS, indirect=True)
def test_outbox_survives_sigkill_and_is_learnt_exactly_once(tmp_path: Path, upstream: ScriptedUpstream, fast_embedder_config: dict[str, Any],
                                                             store_config: Any) -> None:
    stall = {"on": True}

    def script(req: ScriptedRequest) -> Reply:
        if req.stage == "extract" and stall["on"]:
            return Reply.json({"facts": ["Is allergic to cheese"]}, delay=60)  # the child dies before this arrives
        return restaurant_llm(req)

    upstream.handler = script
    config = client_config(tmp_path / "crash.db", upstream, embedder=fast_embedder_config, vector_store=store_config(tmp_path / "crash.db"))
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith("ANSWERED"), child.stderr.read() if child.stderr else line
        deadline = time.monotonic() + 60
        while not upstream.chat_requests("extract"):  # the child's learner has claimed the exchange
            assert time.monotonic() < deadline, "the child never started learning"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()

    stall["on"] = False
    upstream.requests.clear()
    with Memlane(config=config) as client:
        assert client.outbox_status()["pending"] == 1, "the exchange outlived the process"
        assert client.flush(timeout=30)
        records = client.memory.get_all(user_id="alice")["results"]
        assert [r["memory"] for r in records] == ["Is allergic to cheese"]
        assert [e["event"] for e in client.memory.history(records[0]["id"])] == ["ADD"]
        assert len(upstream.chat_requests("extract")) == 1, "learnt exactly once after the crash"
        assert client.outbox_status()["pending"] == 0


def test_two_clients_on_one_store_learn_each_exchange_once(tmp_path: Path, upstream: ScriptedUpstream, fast_embedder_config: dict[str, Any],
                                                          store_config: Any) -> None:
    upstream.handler = restaurant_llm
    config = client_config(tmp_path / "shared.db", upstream, embedder=fast_embedder_config, vector_store=store_config(tmp_path / "shared.db"))
    with Memlane(config=config) as a, Memlane(config=config) as b:
        for i in range(6):
            (a if i % 2 else b).chat.completions.create(
                messages=[{"role": "user", "content": f"Turn {i}: I love Indian food."}], model="m", user_id=f"user-{i}")
        assert a.flush(timeout=30) and b.flush(timeout=30)
        assert len(upstream.chat_requests("extract")) == 6
        for i in range(6):
            assert [r["memory"] for r in a.memory.get_all(user_id=f"user-{i}")["results"]] == ["Loves Indian food"]
        statuses = (a.outbox_status(), b.outbox_status())
        assert statuses[0]["learned"] + statuses[1]["learned"] == 6, [(s["learned"], s["failed_attempts"], s["lease_lost"], s["worker_last_error"]) for s in statuses]


EXITING_CHILD = """
import json, sys
from memlane import Memlane
config = json.loads(sys.argv[1])
config["outbox"]["exit_flush_seconds"] = 30
client = Memlane(config=config)
client.chat.completions.create(messages=[{"role": "user", "content": "I love Indian food."}], model="m", user_id="alice")
# no flush, no close: the client drains the outbox at interpreter exit
"""


def test_the_client_flushes_at_exit(tmp_path: Path, upstream: ScriptedUpstream, fast_embedder_config: dict[str, Any]) -> None:
    upstream.handler = restaurant_llm
    config = client_config(tmp_path / "exit.db", upstream, embedder=fast_embedder_config)
    done = subprocess.run([sys.executable, "-c", EXITING_CHILD, json.dumps(config)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    from memlane import Memory

    with Memory(config) as memory:
        assert [r["memory"] for r in memory.get_all(user_id="alice")["results"]] == ["Loves Indian food"]
        assert memory.store.outbox.stats()["pending"] == 0


HANGING_EXIT_CHILD = """
import json, sys, time
from memlane import Memlane
config = json.loads(sys.argv[1])
config["outbox"]["exit_flush_seconds"] = 2
clients = [Memlane(config={**config, "vector_store": {"provider": "sqlite", "config": {"path": sys.argv[2] + str(i)}}}) for i in range(3)]
for client in clients:
    client.chat.completions.create(messages=[{"role": "user", "content": "I love Indian food."}], model="m", user_id="alice")
print(time.monotonic(), flush=True)
"""


def test_exit_waits_for_a_hanging_memory_model_no_longer_than_configured(tmp_path: Path, upstream: ScriptedUpstream,
                                                                         fast_embedder_config: dict[str, Any]) -> None:
    """Three clients, a memory model that never answers, exit_flush_seconds=2: the interpreter
    exits after about 2 s in all (one shared deadline, not one per client), the exchanges kept."""
    upstream.handler = lambda req: Reply.text("answer") if req.stage == "chat" else Reply.json({"facts": []}, delay=60)
    config = client_config(tmp_path / "unused.db", upstream, embedder=fast_embedder_config)
    done = subprocess.run([sys.executable, "-c", HANGING_EXIT_CHILD, json.dumps(config), str(tmp_path / "hang.db")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    exiting_for = time.monotonic() - float(done.stdout.strip())
    assert exiting_for < 6, f"exit took {exiting_for:.1f} s"
    from memlane import Memory

    with Memory({**config, "vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "hang.db0")}}}) as memory:
        assert memory.store.outbox.stats()["pending"] == 1, "what exit could not learn stays queued"
