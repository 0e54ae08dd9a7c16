"""Adds to one scope are serialised across threads and processes: no lost update, no duplicate;
other scopes proceed in parallel.

The scripted memory LLM plays a read-modify-write: every exchange says "visited the gym again"
and reconcile turns "Gym visits: K" into "Gym visits: K+1", slowly. Without the per-scope lock
two adds read the same K and one increment is lost.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from memlane import Memory
from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream

from tests.scenarios import MULTI_PROCESS_BACKENDS, engine_config
from tests.threads import run_in_threads


def gym_counter(req: ScriptedRequest) -> Reply:
    """Each exchange visits the gym once; reconcile adds the visits it is told of (several when
    a batch of exchanges is learnt together)."""
    if req.stage == "extract":
        if len(req.exchanges) > 1:
            return Reply.json({"exchanges": [{"exchange": n, "facts": ["Visited the gym again"]} for n in range(1, len(req.exchanges) + 1)]})
        return Reply.json({"facts": ["Visited the gym again"]})
    for item in req.reconcile_payload["existing_memories"]:
        found = re.fullmatch(r"Gym visits: (\d+)", item["text"])
        if found:
            new = f"Gym visits: {int(found[1]) + req.reconcile_payload['new_facts'].count('Visited the gym again')}"
            return Reply.json({"memory": [{"id": item["id"], "text": new, "event": "UPDATE", "old_memory": item["text"]}]}, delay=0.03)
    return Reply.json({"memory": [{"id": "0", "text": "Visited the gym again", "event": "ADD"}]})


@pytest.fixture
def counter_config(tmp_path: Path, upstream: ScriptedUpstream, fast_embedder_config: dict[str, Any], store_config: Any) -> dict[str, Any]:
    upstream.handler = gym_counter
    config = engine_config(tmp_path / "shared.db", upstream, embedder=fast_embedder_config, vector_store=store_config(tmp_path / "shared.db"))
    with Memory(config) as seeder:
        seeder.add("Gym visits: 0", user_id="alice", infer=False)
    return config


def visits(config: dict[str, Any]) -> list[str]:
    with Memory(config) as m:
        return [r["memory"] for r in m.get_all(user_id="alice")["results"]]


def test_threads_on_one_scope_lose_no_update(counter_config: dict[str, Any]) -> None:
    memory = Memory(counter_config)

    def worker() -> None:
        for _ in range(3):
            memory.add("I went to the gym again", user_id="alice")

    errors = run_in_threads(worker, 6, 120)
    memory.close()
    assert errors == []
    assert visits(counter_config) == ["Gym visits: 18"]


WORKER = """
import json, sys
from memlane import Memory
config = json.loads(sys.argv[1])
with Memory(config) as m:
    for _ in range(int(sys.argv[2])):
        m.add("I went to the gym again", user_id="alice")
        m.add(["Loves tea", "Loves coffee"], user_id="carol", infer=False)
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", MULTI_PROCESS_BACKENDS, indirect=True)
def test_two_processes_on_one_file_lose_no_update_and_store_no_duplicate(counter_config: dict[str, Any]) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(counter_config), "4"], stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
    assert visits(counter_config) == ["Gym visits: 8"]
    with Memory(counter_config) as m:
        (record,) = m.get_all(user_id="alice", filters={"memory": {"contains": "Gym"}})["results"]
        events = [e["event"] for e in m.history(record["id"])]
        assert events == ["ADD"] + ["UPDATE"] * 8
        dup = m.get_all(user_id="carol")["results"]
        assert sorted(r["memory"] for r in dup) == ["Loves coffee", "Loves tea"]


def test_same_text_from_many_threads_is_stored_once(make_memory: Any, fast_embedder_config: dict[str, Any]) -> None:
    memory = make_memory(embedder=fast_embedder_config)
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        memory.add("Is allergic to cheese", user_id="alice", infer=False)

    assert run_in_threads(worker, 8, 60) == []
    assert [r["memory"] for r in memory.get_all(user_id="alice")["results"]] == ["Is allergic to cheese"]


def test_other_scopes_proceed_while_one_is_busy(make_memory: Any, fast_embedder_config: dict[str, Any]) -> None:
    from memlane.records import Scope

    memory = make_memory(embedder=fast_embedder_config)
    done: dict[str, float] = {}

    def add(user: str) -> None:
        memory.add(f"{user} likes tea", user_id=user, infer=False)
        done[user] = time.monotonic()

    with memory.store.scope_lock(Scope(user_id="alice")):
        blocked = threading.Thread(target=add, args=("alice",))
        free = threading.Thread(target=add, args=("bob",))
        blocked.start()
        free.start()
        free.join(30)
        assert "bob" in done, "another scope must not wait for alice's lock"
        time.sleep(0.3)
        assert "alice" not in done, "alice's add must wait for her scope's lock"
    blocked.join(30)
    assert "alice" in done


def assert_no_text_update_lost(history: list[dict[str, Any]], written: set[str], final: str) -> None:
    """Every text written appears exactly once as a change of text, and the last change is what is
    stored: a lost update shows as a stale text written back over a newer one."""
    changes = [e["new_memory"] for e in history if e["event"] == "UPDATE" and e["new_memory"] != e["old_memory"]]
    assert sorted(changes) == sorted(written), "a text update was reverted or lost"
    assert changes[-1] == final


def test_text_and_metadata_updates_racing_on_one_memory_lose_nothing(make_memory: Any, fast_embedder_config: dict[str, Any]) -> None:
    """8 threads change the text while 8 change only the metadata: each decision is taken on the
    row read under the scope lock, so no text is reverted and no update fails for want of a vector."""
    memory = make_memory(embedder=fast_embedder_config)
    (added,) = memory.add("Version start", user_id="alice", infer=False)["results"]
    barrier = threading.Barrier(16)
    written: set[str] = set()
    turn = iter(range(16))

    def worker() -> None:
        n = next(turn)
        barrier.wait()
        for i in range(10):
            if n % 2:
                memory.update(added["id"], metadata={"writer": n, "round": i})
            else:
                text = f"Version {n}.{i}"
                assert memory.update(added["id"], text)["memory"] == text
                written.add(text)

    assert run_in_threads(worker, 16, 120) == []
    final = memory.get(added["id"])
    assert_no_text_update_lost(memory.history(added["id"]), written, final["memory"])
    assert set(final["metadata"]) >= {"writer", "round"} and final["metadata"]["writer"] % 2 == 1
