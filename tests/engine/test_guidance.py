"""A project's instructions and categories, on every backend: they reach the one extraction
call, facts the model marks as excluded are dropped, and each learnt memory carries the
categories it was filed under (``metadata.categories``, filterable), with no extra LLM call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from memlane import Memory
from memlane.config import OutboxConfig
from memlane.engine.learner import Learner
from memlane.errors import ValidationError
from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream

NO_HEALTH = "Never store health information. Keep food preferences."
FOOD = [{"food": "what the user eats and avoids"}, {"travel": "trips"}]


def every_fact_new(req: ScriptedRequest) -> Reply:
    """Reconcile: every new fact is added."""
    if req.stage != "reconcile":
        return Reply.text("ok")
    new = json.loads(req.messages[-1]["content"].split("\n\n", 1)[1])["new_facts"]
    return Reply.json({"memory": [{"id": "new", "text": fact, "event": "ADD", "old_memory": ""} for fact in new]})


def labelled_model(req: ScriptedRequest) -> Reply:
    """A model that files facts and marks the ones the instructions exclude, as asked."""
    if req.stage != "extract":
        return every_fact_new(req)
    facts = []
    for said in req.said_by("user"):
        if "vegetarian" in said:
            facts.append({"text": "Is vegetarian", "categories": ["FOOD", "made-up"], "excluded": False})
        if "asthma" in said:
            facts.append({"text": "Has asthma", "categories": ["health"], "excluded": "Never store health" in req.messages[0]["content"]})
        if "Lisbon" in said:
            facts.append({"text": "Is flying to Lisbon in June", "categories": ["travel"], "excluded": False})
    if req.exchanges and len(req.exchanges) > 1:
        return Reply.json({"exchanges": [{"exchange": 1, "facts": facts[:1]}, {"exchange": 2, "facts": facts[1:]}]})
    return Reply.json({"facts": facts})


@pytest.fixture
def memory(make_memory: Callable[..., Memory], upstream: ScriptedUpstream) -> Memory:
    upstream.handler = labelled_model
    return make_memory()


def test_the_projects_instructions_reach_extraction_and_excluded_facts_are_dropped(memory: Memory, upstream: ScriptedUpstream) -> None:
    memory.update_project(custom_instructions=NO_HEALTH)
    added = memory.add("I'm vegetarian and I have asthma", user_id="ana")
    assert [r["memory"] for r in added["results"]] == ["Is vegetarian"]
    extraction = upstream.chat_requests("extract")[-1]
    system = extraction.messages[0]["content"]
    assert json.dumps(NO_HEALTH) in system and '"excluded"' in system
    schema = extraction.json["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["facts"]["items"]["required"] == ["text", "categories", "excluded"]
    assert [m["memory"] for m in memory.get_all(user_id="ana")["results"]] == ["Is vegetarian"]
    assert len(upstream.chat_requests()) == 1, "no extra call: one extraction (nothing similar to reconcile with)"


def test_categories_are_stored_with_the_memory_and_filterable(memory: Memory) -> None:
    memory.update_project(custom_categories=FOOD)
    memory.add("I'm vegetarian", user_id="ana")
    memory.add("I'm flying to Lisbon in June", user_id="ana")
    (veg,) = memory.search("diet", user_id="ana", categories=["food"])["results"]
    assert veg["memory"] == "Is vegetarian"
    assert veg["metadata"]["categories"] == ["food"] == veg["categories"], "known names only, in the list's own spelling"
    travel = memory.get_all(user_id="ana", filters={"categories": {"contains": "travel"}})["results"]
    assert [m["memory"] for m in travel] == ["Is flying to Lisbon in June"]


def test_an_adds_own_instructions_and_categories_win_over_the_projects(memory: Memory, upstream: ScriptedUpstream) -> None:
    memory.update_project(custom_instructions="Keep everything.", custom_categories=["travel"])
    added = memory.add("I have asthma and I'm vegetarian", user_id="ana", custom_instructions=NO_HEALTH, custom_categories=["food"])
    assert [(r["memory"]) for r in added["results"]] == ["Is vegetarian"]
    assert memory.get_all(user_id="ana")["results"][0]["categories"] == ["food"]
    assert "Keep everything." not in upstream.chat_requests("extract")[-1].messages[0]["content"]


def test_project_settings_are_kept_in_the_store_and_fall_back_to_the_config(make_memory: Callable[..., Memory], tmp_path: Path) -> None:
    configured = {"custom_instructions": "Only work facts.", "custom_categories": ["work"]}
    first = make_memory(tmp_path / "a.db", inference=configured)
    assert first.get_project() == configured
    first.update_project(custom_categories=FOOD)
    first.close()
    again = make_memory(tmp_path / "a.db", inference=configured)
    assert again.get_project() == {"custom_instructions": "Only work facts.", "custom_categories": FOOD}
    assert again.get_project(["custom_categories"]) == {"custom_categories": FOOD}
    again.update_project(custom_categories=[])  # cleared: the config's again
    assert again.get_project()["custom_categories"] == ["work"]
    with pytest.raises(ValidationError, match="custom_categories"):
        again.update_project(custom_categories=[{"a": "x", "b": "y"}])
    with pytest.raises(ValidationError, match="needs custom_instructions or custom_categories"):
        again.update_project()


def test_without_instructions_or_categories_extraction_asks_for_plain_facts(memory: Memory, upstream: ScriptedUpstream) -> None:
    upstream.handler = lambda req: Reply.json({"facts": ["Is vegetarian"]} if req.stage == "extract" else {"memory": []})
    memory.add("I'm vegetarian", user_id="ana")
    extraction = upstream.chat_requests("extract")[-1]
    assert extraction.json["response_format"]["json_schema"]["schema"]["properties"]["facts"]["items"] == {"type": "string"}
    assert "categories" not in memory.get_all(user_id="ana")["results"][0]


def test_a_batch_of_exchanges_follows_the_projects_instructions(memory: Memory, upstream: ScriptedUpstream) -> None:
    memory.update_project(custom_instructions=NO_HEALTH, custom_categories=FOOD)
    for said in ("I'm vegetarian", "I have asthma"):
        memory.enqueue({"messages": [{"role": "user", "content": said}], "scope": {"user_id": "ana"}})
    learner = Learner(memory, OutboxConfig(poll_seconds=0.05, workers=1, batch_size=8))
    try:
        assert learner.flush(30)
    finally:
        learner.stop()
    assert len(upstream.chat_requests("extract")) == 1, "one extraction for both exchanges"
    assert [(m["memory"], m.get("categories")) for m in memory.get_all(user_id="ana")["results"]] == [("Is vegetarian", ["food"])]
    assert learner.status()["dropped"] == {"excluded": 1}


def keyed_model(req: ScriptedRequest) -> Reply:
    """An extractor that gives each fact a few search keys, as ``inference.search_keys`` asks."""
    if req.stage != "extract":
        return every_fact_new(req)
    facts = []
    for said in req.said_by("user"):
        if "cheese" in said:
            facts.append({"text": "Is allergic to cheese", "categories": [], "excluded": False,
                          "keys": ["foods to avoid", "can't eat dairy", "foods to avoid"]})
        if "Indian" in said:
            facts.append({"text": "Loves Indian cuisine", "categories": [], "excluded": False, "keys": ["favourite dishes"]})
    return Reply.json({"facts": facts})


def test_search_keys_are_indexed_with_the_fact_but_not_its_text(make_memory: Callable[..., Memory], upstream: ScriptedUpstream) -> None:
    upstream.handler = keyed_model
    # (without the stance bonus, which alone ranks the allergy first: what the keys add shows)
    memory = make_memory(inference={"search_keys": True}, retrieval={"stance_bonus": 0})
    memory.add("I'm allergic to cheese", user_id="ana")
    memory.add("I love Indian food", user_id="ana")
    extraction = upstream.chat_requests("extract")[-1]
    assert '"keys"' in extraction.messages[0]["content"]
    assert extraction.json["response_format"]["json_schema"]["schema"]["properties"]["facts"]["items"]["required"][-1] == "keys"
    allergy = next(m for m in memory.get_all(user_id="ana")["results"] if m["memory"] == "Is allergic to cheese")
    assert allergy["metadata"]["search_keys"] == ["foods to avoid", "can't eat dairy"]  # repeats dropped
    found = memory.search("Which foods must I avoid?", user_id="ana", limit=2)["results"]
    # by its key: the question shares no word with the fact, and without keys the cuisine ranks first
    assert [m["memory"] for m in found] == ["Is allergic to cheese", "Loves Indian cuisine"]
