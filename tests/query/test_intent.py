"""Whose words a question asks about, and whether it asks for a name: what recall's role and
name bonuses read."""

from __future__ import annotations

import pytest

from memlane.query.intent import asked_role, asks_for_name


@pytest.mark.parametrize(("question", "role"), [
    ("What painters did you recommend to me?", "assistant"),
    ("You once recommended a game to me. What was its name?", "assistant"),
    ("What advice have you given me about living a healthy life?", "assistant"),
    # the question proper is the last one: what the assistant recommended
    ("I once consulted with you about stress. What methods did you recommend to me?", "assistant"),
    ("What movie did I watch on May 3rd?", "user"),
    ("What types of music do I like?", "user"),
    # "you" as the object: the user recommended
    ("I once recommended a food program to you, what was its name?", "user"),
    # the last question names nobody: the whole text decides
    ("On May 6th, I read a book. What was its name?", "user"),
    # asking the assistant to remember is not asking what it said
    ("Do you remember what I told you about my dog?", "user"),
    ("What did Caroline paint?", None),
    ("What topics did we talk about on April 29th?", None),
])
def test_the_role_a_question_asks_about(question: str, role: str | None) -> None:
    assert asked_role(question) == role


@pytest.mark.parametrize(("question", "asks"), [
    ("I once shared a movie with you, what was its name?", True),
    ("Where did I plan to go?", True),
    ("Who helped me on the mountain?", True),
    ("What movie did I watch on May 3rd?", True),
    ("How long did I run in the park?", False),
    ("Why was I in a bad mood?", False),
    ("What did Caroline paint?", False),
    # "which" asks for a kind as often as for a name
    ("Which foods must I avoid?", False),
])
def test_whether_a_question_asks_for_a_name(question: str, asks: bool) -> None:
    assert asks_for_name(question) is asks


def test_a_megabyte_turn_is_read_in_linear_time() -> None:
    """A chat turn may be megabytes long (server.max_memory_chars bounds memories, not turns):
    the first version scanned for a question from every position (hours for 2 MB, found by
    tests/server/test_input_limits.py hanging: re holds the GIL, so on that code this test hangs
    rather than fails); what a turn asks is at its end."""
    import threading

    answers: list[object] = []
    worker = threading.Thread(target=lambda: answers.extend([asked_role("x" * 2_000_000), asks_for_name("x" * 2_000_000),
                                                             asked_role("x" * 2_000_000 + " What did you recommend to me?")]),
                              daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert answers == [None, False, "assistant"]
