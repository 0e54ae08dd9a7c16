"""``inference.confirm_changes``: a fact reconcile added beside a memory it should have changed
is put to the memory model again, as one question about that memory (memlane.engine.confirm).

The reconcile answers here are the ones Qwen2.5-1.5B gave in issue 25's benchmark: NONE for the
old memory and ADD (or UPDATE of an id it was never shown) for the correction."""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest

from memlane import Memory
from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream

RACE = "Training for a half marathon in March"


def is_confirm(req: ScriptedRequest) -> bool:
    return req.last_user_text.startswith("Memory: ")


def qwen_like(reconcile: list[dict[str, Any]], answer: dict[str, Any] | None, asked: list[str]) -> Callable[[ScriptedRequest], Reply]:
    def script(req: ScriptedRequest) -> Reply:
        if req.stage == "extract":
            return Reply.json({"facts": ["Race got moved to April"]})
        if req.stage == "reconcile":
            return Reply.json({"memory": reconcile})
        if is_confirm(req):
            asked.append(req.last_user_text)
            return Reply.json(answer) if answer is not None else Reply.text("no idea")
        return Reply.text("This is a scripted answer.")
    return script


@pytest.fixture
def confirming(make_memory: Callable[..., Memory]) -> Memory:
    return make_memory(inference={"confirm_changes": True})


@pytest.mark.parametrize("added", [
    {"id": "new", "text": "Race got moved to April", "event": "ADD", "old_memory": ""},
    {"id": "new", "text": "Race got moved to April", "event": "UPDATE", "old_memory": ""},  # an id it was never shown
])
def test_a_memory_the_model_says_is_no_longer_true_is_updated_and_the_new_fact_kept(
        confirming: Memory, upstream: ScriptedUpstream, added: dict[str, Any]) -> None:
    (race,) = [r["id"] for r in confirming.add(RACE, user_id="alice", infer=False)["results"]]
    asked: list[str] = []
    upstream.handler = qwen_like([{"id": "0", "text": RACE, "event": "NONE", "old_memory": ""}, added],
                                 {"still_true": False, "now_true": "Training for a half marathon in April"}, asked)
    result = confirming.add("The race got moved to April, by the way.", user_id="alice")
    assert asked == [f'Memory: {json.dumps(RACE)}\nNew fact: "Race got moved to April"\nIs the memory still true?']
    assert {(r["event"], r["memory"]) for r in result["results"]} == {
        ("ADD", "Race got moved to April"), ("UPDATE", "Training for a half marathon in April")}
    assert confirming.get(race)["memory"] == "Training for a half marathon in April"
    assert [e["old_memory"] for e in confirming.history(race)][-1] == RACE, "the old text stays in history"


def test_nothing_left_of_a_memory_deletes_it(confirming: Memory, upstream: ScriptedUpstream) -> None:
    confirming.add(RACE, user_id="alice", infer=False)
    upstream.handler = qwen_like([{"id": "new", "text": "Race got moved to April", "event": "ADD", "old_memory": ""}],
                                 {"still_true": False, "now_true": ""}, [])
    confirming.add("The race got moved to April.", user_id="alice")
    assert [r["memory"] for r in confirming.get_all(user_id="alice")["results"]] == ["Race got moved to April"]


@pytest.mark.parametrize("answer", [
    {"still_true": True, "now_true": ""},
    {"still_true": False, "now_true": RACE},  # "not true", rewritten as it was: the model contradicts itself
    None,  # an answer that is not JSON, twice
])
def test_a_memory_still_true_or_an_unusable_answer_leaves_reconcile_as_it_was(
        confirming: Memory, upstream: ScriptedUpstream, answer: dict[str, Any] | None) -> None:
    confirming.add(RACE, user_id="alice", infer=False)
    upstream.handler = qwen_like([{"id": "new", "text": "Race got moved to April", "event": "ADD", "old_memory": ""}], answer, [])
    confirming.add("The race got moved to April.", user_id="alice")
    assert {r["memory"] for r in confirming.get_all(user_id="alice")["results"]} == {RACE, "Race got moved to April"}


def test_off_by_default_no_question_is_asked(memory: Memory, upstream: ScriptedUpstream) -> None:
    memory.add(RACE, user_id="alice", infer=False)
    asked: list[str] = []
    upstream.handler = qwen_like([{"id": "new", "text": "Race got moved to April", "event": "ADD", "old_memory": ""}],
                                 {"still_true": False, "now_true": ""}, asked)
    memory.add("The race got moved to April.", user_id="alice")
    assert asked == [] and len(memory.get_all(user_id="alice")["results"]) == 2


def test_a_memory_reconcile_already_changed_is_not_asked_about(confirming: Memory, upstream: ScriptedUpstream) -> None:
    confirming.add(RACE, user_id="alice", infer=False)
    asked: list[str] = []
    upstream.handler = qwen_like([{"id": "0", "text": "Training for a half marathon in April", "event": "UPDATE", "old_memory": RACE}],
                                 {"still_true": False, "now_true": ""}, asked)
    confirming.add("The race got moved to April.", user_id="alice")
    assert asked == []
    assert [r["memory"] for r in confirming.get_all(user_id="alice")["results"]] == ["Training for a half marathon in April"]
