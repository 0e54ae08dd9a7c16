"""Whether a question asks for an aversion or a liking, and which a memory states: what
recall's stance bonus reads."""

from __future__ import annotations

import pytest

from memlane.query.stance import asked_stance, stances_in


@pytest.mark.parametrize(("question", "stance"), [
    ("Which foods must I avoid?", "aversion"),
    ("what can't I eat?", "aversion"),
    ("Which seafood should I stay away from?", "aversion"),
    ("What is Joanna allergic to?", "aversion"),
    ("I don't like working out, right?", "aversion"),  # a negated liking is an aversion
    ("What am I not allowed to drink?", "aversion"),
    ("What dishes do I enjoy most?", "liking"),
    ("What is Nate's favorite movie trilogy?", "liking"),
    ("What types of music do I like?", "liking"),
    # "like" as a preposition, and "can't" about the asking, ask no stance
    ("What was the weather like on April 30th?", None),
    ("I can't remember what movie I watched, what was it?", None),
    ("Can I drink milk?", None),
    ("Where is my next trip?", None),
])
def test_the_stance_a_question_asks_about(question: str, stance: str | None) -> None:
    assert asked_stance(question) == stance


@pytest.mark.parametrize(("text", "stances"), [
    ("I am allergic to cheese", {"aversion"}),
    ("Lactose intolerant", {"aversion"}),
    ("I can't eat anything with gluten", {"aversion"}),
    ("I don't like working out", {"aversion"}),  # not a liking too
    ("I’m scared of heights", {"aversion"}),  # a typographic apostrophe reads the same
    ("My favourite cuisine is Indian", {"liking"}),
    ("I like cats", {"liking"}),
    ("We love hiking on weekends", {"liking"}),
    ("I love Indian food but I'm allergic to cheese", {"aversion", "liking"}),
    ("It looks like rain today", set()),
    ("I live in San Francisco", set()),
    # what the words cannot read: a symptom with no aversion word
    ("Shellfish gives me hives", set()),
])
def test_the_stances_a_memory_states(text: str, stances: set[str]) -> None:
    assert stances_in(text) == stances


def test_only_the_end_of_a_long_question_and_the_start_of_a_long_memory_are_read() -> None:
    assert asked_stance("I avoid nothing. " + "x " * 1000 + "Where do I live?") is None
    assert stances_in("I live in Porto. " + "x " * 1000 + "I hate rain") == set()


def test_a_stance_said_before_the_question_is_not_asked_about() -> None:
    assert asked_stance("I love Indian food. Dinner ideas?") is None
    assert asked_stance("I'm allergic to nuts. What can I order?") is None
    assert asked_stance("We talked about food. Which foods must I avoid?") == "aversion"
    assert asked_stance("I love food") == "liking"  # no question: the whole text
