"""The files learner processes tell the server through: counters added up over processes, the
learnt log followed across its rotation, and the stores a learner process cannot share."""

from __future__ import annotations

from pathlib import Path

from memlane.config import load_config
from memlane.server.learner_files import LearntLog, LearntTail, learnt_path, merged_status, status_path, write_status
from memlane.server.learner_supervisor import why_not_a_process


def test_the_counters_of_every_learner_process_are_added_up(tmp_path: Path) -> None:
    write_status(status_path(tmp_path, "acme", 0), {"learned": 3, "llm_calls": 4, "events": {"ADD": 2}, "worker_last_error": None})
    write_status(status_path(tmp_path, "acme", 1), {"learned": 2, "llm_calls": 1, "events": {"ADD": 1, "UPDATE": 1},
                                                    "worker_last_error": "boom"})
    write_status(status_path(tmp_path, "other", 0), {"learned": 100})
    status = merged_status(tmp_path, "acme")
    assert (status["learned"], status["llm_calls"], status["events"]["ADD"], status["events"]["UPDATE"]) == (5, 5, 3, 1)
    assert status["worker_alive"] and status["worker_last_error"] == "boom"
    assert merged_status(tmp_path, "nobody")["learned"] == 0 and not merged_status(tmp_path, "nobody")["worker_alive"]


def test_the_learnt_log_is_followed_from_where_the_server_started_and_across_its_rotation(tmp_path: Path) -> None:
    path = learnt_path(tmp_path, "default", 0)
    log = LearntLog(path, max_bytes=200)
    log.append("before", [], 0.1)
    tail = LearntTail(path)  # a worker starting now: what was learnt before is no chat of its
    seen: list[str] = []
    for n in range(12):  # past 200 bytes the file is renamed to .1 and started again (4 times here)
        log.append(f"x{n}", [{"event": "ADD", "memory": "m" * 20}], 0.01)
        if n % 2:  # read after every second line: some reads span a rotation
            seen += [r["id"] for r in tail.read()]
    assert Path(str(path) + ".1").exists()
    assert seen == [f"x{n}" for n in range(12)], "each line once, in order, across the renames"
    log.close()


def test_a_store_only_one_process_can_open_keeps_the_learner_in_the_server() -> None:
    assert why_not_a_process(load_config({"vector_store": {"provider": "qdrant", "config": {"path": "/tmp/q"}}}))
    assert why_not_a_process(load_config({"vector_store": {"provider": "sqlite", "config": {"path": ":memory:"}}}))
    assert why_not_a_process(load_config({"vector_store": {"provider": "qdrant", "config": {"url": "http://q:6333"}}})) is None
    assert why_not_a_process(load_config({"vector_store": {"provider": "sqlite", "config": {"path": "/tmp/m.db"}}})) is None


def test_a_half_line_left_by_a_killed_learner_does_not_swallow_the_next_one(tmp_path: Path) -> None:
    path = learnt_path(tmp_path, "default", 0)
    path.write_text("")
    tail = LearntTail(path)
    path.write_text('{"id": "half", "chan')  # a learner process killed mid-write
    log = LearntLog(path)  # the restarted learner process
    log.append("next", [], None)
    log.close()
    assert [r["id"] for r in tail.read()] == ["next"]
