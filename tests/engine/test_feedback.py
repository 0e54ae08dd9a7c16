"""Feedback on memories on every store (mem0's POSITIVE / NEGATIVE / VERY_NEGATIVE with a
reason): each one kept, listed oldest first, exported with its memory and imported back."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from memlane import Memory
from memlane.errors import NotFoundError, ValidationError


def test_feedback_is_kept_per_memory_in_mem0s_names(memory: Memory) -> None:
    memory_id = memory.add("Likes tea", user_id="alice", infer=False)["results"][0]["id"]
    given = memory.feedback(memory_id, "negative", "she said coffee")
    assert {k: given[k] for k in ("memory_id", "feedback", "feedback_reason")} == \
        {"memory_id": memory_id, "feedback": "NEGATIVE", "feedback_reason": "she said coffee"}
    memory.feedback(memory_id, "VERY_NEGATIVE")
    memory.feedback(memory_id, None, "withdrawn")
    assert [(f["feedback"], f["feedback_reason"]) for f in memory.get_feedback(memory_id)] == [
        ("NEGATIVE", "she said coffee"), ("VERY_NEGATIVE", None), (None, "withdrawn")]
    other = memory.add("Likes coffee", user_id="alice", infer=False)["results"][0]["id"]
    assert memory.get_feedback(other) == [], "feedback belongs to its memory"


def test_bad_feedback_is_refused_naming_the_field(memory: Memory) -> None:
    memory_id = memory.add("Likes tea", user_id="alice", infer=False)["results"][0]["id"]
    with pytest.raises(ValidationError, match="feedback must be one of POSITIVE, NEGATIVE, VERY_NEGATIVE") as info:
        memory.feedback(memory_id, "GREAT")
    assert info.value.param == "feedback"
    with pytest.raises(ValidationError, match="feedback_reason must be a string of at most 2000"):
        memory.feedback(memory_id, "POSITIVE", "x" * 2001)
    with pytest.raises(NotFoundError):
        memory.feedback("no-such-memory", "POSITIVE")
    with pytest.raises(NotFoundError):
        memory.get_feedback("no-such-memory")
    assert memory.get_feedback(memory_id) == []


def test_feedback_travels_in_an_export_and_comes_back_with_an_import(memory: Memory, make_memory: Callable[..., Memory],
                                                                     tmp_path: Path) -> None:
    memory_id = memory.add("Likes tea", user_id="alice", infer=False)["results"][0]["id"]
    memory.feedback(memory_id, "POSITIVE", "right")
    (line,) = list(memory.export(user_id="alice"))
    assert [(f["feedback"], f["feedback_reason"]) for f in line["feedback"]] == [("POSITIVE", "right")]
    memory.delete(memory_id)
    assert memory.get_feedback(memory_id)[0]["feedback"] == "POSITIVE", "it outlives its memory, as history does"
    elsewhere = make_memory(tmp_path / "other.db")
    assert elsewhere.import_records([line]) == {"imported": 1, "skipped": 0}
    assert elsewhere.get_feedback(memory_id) == memory.get_feedback(memory_id)
    elsewhere.import_records([line])  # again: nothing doubles
    assert len(elsewhere.get_feedback(memory_id)) == 1
    with pytest.raises(ValidationError, match="record 0: feedback 'GOOD' is not one of"):
        elsewhere.import_records([{**line, "id": "x", "memory": "Likes mint", "feedback": [{**line["feedback"][0], "feedback": "GOOD"}]}])
