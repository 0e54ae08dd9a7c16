"""Whose words a question asks about: the user's own turns or the assistant's replies.

"What did you recommend to me?" is answered by the assistant's reply; "What movie did I watch?"
and "I once recommended a show to you, what was it?" by the user's own turn. In a chat store
the two sit side by side on the same topic, and the assistant's reply often shares the
question's words as well as the user's turn does ("As an AI, I like many kinds of music...").
Measured on MemoryBank dev (bench/README.md), the wrong speaker's turn was first for 7 of the
20 questions not answered at rank 1.

The rule is grammatical and small: in the question proper (its last sentence ending in "?", or
the whole text when that sentence names nobody), the first of "I"/"my" or a "you" that is not
the object of a preposition decides. Meta phrases ("do you remember", "can you tell me") are
not the subject. A question about a third person ("What did Caroline paint?") or about both
("What did we talk about?") has no role.
"""

from __future__ import annotations

import re
from typing import Literal

Role = Literal["user", "assistant"]

#: phrases where "you" is the listener being asked, not whose words are asked about
_META = re.compile(r"\b(?:do|can|could|would|will) you (?:remember|recall|know|tell me|remind me|say)\b|"
                   r"\b(?:tell|remind) me\b|\bdo you think\b", re.IGNORECASE)
_SPEAKER = re.compile(r"\b(?:(?P<user>i|i'm|i've|i'd|i'll|my|myself)|(?P<prep>to|with|for|from|about|at|by|of|than|like)?\s*"
                      r"(?P<you>you|your|yourself))\b", re.IGNORECASE)
#: a question is read from its last this many characters (a chat turn may be megabytes long;
#: what it asks is at its end)
MAX_QUESTION_CHARS = 1000


def last_question(text: str) -> str | None:
    """The last sentence that ends in "?" (found from the end: linear in the text's length)."""
    end = text.rfind("?")
    if end < 0:
        return None
    start = max(text.rfind(mark, 0, end) for mark in ".?!") + 1
    return text[start:end + 1]


def _first_speaker(text: str) -> Role | None:
    for found in _SPEAKER.finditer(_META.sub(" ", text)):
        if found["user"]:
            return "user"
        if found["you"] and not found["prep"]:
            return "assistant"
    return None


def asked_role(question: str) -> Role | None:
    """``"user"`` when the question asks about the user's own words or life, ``"assistant"``
    when it asks what the assistant said, else None."""
    question = question[-MAX_QUESTION_CHARS:]
    last = last_question(question)
    if last is not None:
        role = _first_speaker(last)
        if role is not None:
            return role
    return _first_speaker(question)


#: the question asks for a name: "what was its name?", "where did I go?", "who helped me?",
#: "what movie did I watch?" (a wh-word, a noun, its verb). Not "which": "Which foods must I
#: avoid?" asks for a kind of thing as often as for a name, and with it the name bonus lifted
#: "My favourite cuisine is Indian" over the allergy (paraphrase set R@1 0.88 -> 0.80).
_ASKS_NAME = re.compile(r"\b(?:name[ds]?|called|titled?|where|who|whom)\b|"
                        r"\bwhat (?:[a-z'-]+ ){1,3}(?:did|do|does|was|were|is|are|has|have|had)\b", re.IGNORECASE)


def asks_for_name(question: str) -> bool:
    """Whether the question asks for something named: a title, a place, a person, a thing of a
    kind ("what movie did I watch?"), so an answer names it."""
    return _ASKS_NAME.search(question[-MAX_QUESTION_CHARS:]) is not None
