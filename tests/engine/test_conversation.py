"""Conversation context and time: a memory's keyword context comes from its neighbours in the
scope's conversation, however its turns were batched, and ``add`` takes the conversation's time.
Every test runs on each backend."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Callable

import pytest

from memlane import Memory
from memlane.errors import ValidationError
from memlane.testing import Reply, ScriptedUpstream

TURNS = [
    "Which pet did you adopt last week?",
    "A beagle puppy called Biscuit.",
    "Lovely! Does he like the park near your flat?",
    "He loves chasing pigeons there every morning.",
    "I should take my niece to see him on Sunday.",
]
QUERIES = ["Biscuit", "adopt a pet", "pigeons in the park", "niece Sunday", "beagle puppy park"]


def keyword_hits(memory: Memory, query: str, user_id: str) -> list[tuple[str, float]]:
    """What the keyword signal alone finds (dense-only candidates score 0 at keyword weight 1),
    best first; equal scores by text, since their order is the store's key order."""
    hits = [(h["memory"], round(h["score"], 6)) for h in memory.search(query, user_id=user_id, limit=10)["results"] if h["score"] > 0]
    return sorted(hits, key=lambda hit: (-hit[1], hit[0]))


@pytest.fixture
def keyword_memory(make_memory: Callable[..., Memory]) -> Memory:
    return make_memory(retrieval={"keyword_weight": 1.0, "alignment_weight": 0.0})


def test_context_does_not_depend_on_how_turns_were_batched(keyword_memory: Memory) -> None:
    keyword_memory.add(TURNS, user_id="together", infer=False)
    for turn in TURNS:
        keyword_memory.add(turn, user_id="one-by-one", infer=False)
    for query in QUERIES:
        assert keyword_hits(keyword_memory, query, "together") == keyword_hits(keyword_memory, query, "one-by-one"), query


def test_a_turn_is_found_by_the_words_of_its_reply(keyword_memory: Memory) -> None:
    keyword_memory.add(TURNS[0], user_id="alice", infer=False)
    answer = keyword_memory.add(TURNS[1], user_id="alice", infer=False)["results"][0]
    # the question never says "Biscuit": its reply, added later in its own call, does
    assert {text for text, _ in keyword_hits(keyword_memory, "Biscuit", "alice")} == {TURNS[0], TURNS[1]}
    keyword_memory.delete(answer["id"])  # a deleted memory's words leave its neighbours' context
    assert keyword_hits(keyword_memory, "Biscuit", "alice") == []


def test_turns_far_apart_in_time_are_not_one_conversation(keyword_memory: Memory) -> None:
    keyword_memory.add(TURNS[0], user_id="alice", infer=False, timestamp="2023-05-01T10:00:00Z")
    keyword_memory.add(TURNS[1], user_id="alice", infer=False, timestamp="2023-05-03T10:00:00Z")
    assert [text for text, _ in keyword_hits(keyword_memory, "Biscuit", "alice")] == [TURNS[1]]


def test_other_scopes_and_runs_are_other_conversations(keyword_memory: Memory) -> None:
    keyword_memory.add(TURNS[0], user_id="alice", infer=False)
    keyword_memory.add(TURNS[1], user_id="alice", run_id="another-chat", infer=False)
    keyword_memory.add(TURNS[1], user_id="bob", infer=False)
    assert [text for text, _ in keyword_hits(keyword_memory, "Biscuit", "alice")] == [TURNS[1]]


def test_context_survives_export_and_import(make_memory: Callable[..., Memory], tmp_path: Path) -> None:
    source = make_memory(retrieval={"keyword_weight": 1.0})
    source.add(TURNS, user_id="alice", infer=False)
    copy = make_memory(tmp_path / "copy" / "memlane.db", retrieval={"keyword_weight": 1.0})
    assert copy.import_records(list(source.export(user_id="alice")))["imported"] == len(TURNS)
    for query in QUERIES:
        assert keyword_hits(copy, query, "alice") == keyword_hits(source, query, "alice"), query


@pytest.mark.parametrize("timestamp", [1683554160, 1683554160.0, "2023-05-08T13:56:00Z", "2023-05-08T15:56:00+02:00",
                                       dt.datetime(2023, 5, 8, 13, 56, tzinfo=dt.timezone.utc)])
def test_add_takes_the_time_the_conversation_happened(memory: Memory, timestamp: Any) -> None:
    added = memory.add("I moved to Lisbon", user_id="alice", infer=False, timestamp=timestamp)["results"][0]
    stored = memory.get(added["id"])
    assert stored is not None and stored["created_at"] == "2023-05-08T13:56:00.000000+00:00"
    assert memory.history(added["id"])[0]["created_at"] == stored["created_at"]


@pytest.mark.parametrize("timestamp", [True, "last tuesday", [2023], float("nan")])
def test_a_bad_timestamp_is_a_clear_error(memory: Memory, timestamp: Any) -> None:
    with pytest.raises(ValidationError, match="timestamp") as info:
        memory.add("I moved to Lisbon", user_id="alice", infer=False, timestamp=timestamp)
    assert info.value.param == "timestamp"


def test_extraction_resolves_relative_dates_against_the_conversation_date(memory: Memory, upstream: ScriptedUpstream) -> None:
    upstream.queue(Reply.json({"facts": ["Adopted a dog on 2023-05-07"]}))
    added = memory.add("I adopted a dog yesterday", user_id="alice", timestamp="2023-05-08T13:56:00Z")["results"]
    (extract,) = upstream.chat_requests("extract")
    assert "2023-05-08" in extract.messages[0]["content"]
    assert memory.get(added[0]["id"])["created_at"].startswith("2023-05-08")  # type: ignore[index]


def test_a_speaker_the_question_names_comes_first(memory: Memory) -> None:
    memory.add([{"role": "user", "name": "Melanie", "content": "Caroline showed me her painting of a sunset at the art show"},
                {"role": "user", "name": "Caroline", "content": "I paint sunsets in watercolour at the art show"}],
               user_id="friends", infer=False)
    top = memory.search("What does Caroline paint at the art show?", user_id="friends", limit=1)["results"][0]
    assert top["memory"] == "I paint sunsets in watercolour at the art show" and top["metadata"]["actor_id"] == "Caroline"


def test_memories_from_the_period_the_question_names_come_first(make_memory: Callable[..., Memory]) -> None:
    memory = make_memory(retrieval={"speaker_bonus": 0})
    memory.add("We went hiking in the Alps", user_id="alice", infer=False, timestamp="2023-05-20T10:00:00Z")
    memory.add("We went hiking in the Dolomites", user_id="alice", infer=False, timestamp="2023-08-12T10:00:00Z")
    memory.add("Started a pottery class", user_id="alice", infer=False, timestamp="2023-10-02T10:00:00Z")  # "last" counts from here
    for question, place in (("Where did we go hiking in May 2023?", "Alps"), ("Where did we go hiking in August 2023?", "Dolomites"),
                            ("Where did we go hiking last summer?", "Dolomites")):
        assert place in memory.search(question, user_id="alice", limit=1)["results"][0]["memory"], question



def test_a_question_about_what_you_said_prefers_the_assistants_replies(memory: Memory) -> None:
    memory.add([{"role": "user", "content": "Hello again, it's been a long day at work today."},
                {"role": "assistant", "content": "Hello! I'm sorry to hear that. Do you want to talk about it?"}],
               user_id="luna", infer=False, timestamp="2023-04-27T20:00:00Z")
    memory.add([{"role": "assistant", "content": "As an AI, I like many types of music and movies myself, such as jazz and science fiction."},
                {"role": "user", "content": "I mostly listen to rock and pop, those are my favourite types of music."}],
               user_id="luna", infer=False, timestamp="2023-04-28T20:00:00Z")
    # the user's turn says "music" twice; the question asks what the assistant said (retrieval.role_bonus)
    yours = memory.search("What types of music do you like?", user_id="luna", limit=1)["results"][0]
    assert yours["metadata"]["role"] == "assistant" and "jazz" in yours["memory"]
    mine = memory.search("What types of music do I like?", user_id="luna", limit=1)["results"][0]
    assert mine["metadata"]["role"] == "user" and "rock and pop" in mine["memory"]
