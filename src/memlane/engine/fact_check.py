"""The check after the memory model: which extracted facts are not facts about the user.

Small local models, asked for facts about the user, also hand back the assistant's suggestions
("Try chana masala"), general knowledge the assistant stated ("Beagles love long walks"),
questions, the prompt's own example, and sentences that run on. Each is a memory that later
recalls would inject as if the user had said it, and the model then repeats it, and extraction
learns it back. So every extracted fact is checked against the conversation it came from, by its
words, before it can reach the store; what is dropped is counted with its reason and shown where
learning is shown (the learner's status, the recall log, ``/ui/chats``).

The word test is deliberately one-sided: a fact is dropped as the assistant's only when most of
its content words occur in the assistant's turns and not in the user's, and more of them do so
than occur in the user's. A paraphrase of the user ("Does not eat meat" from "I'm vegetarian")
shares words with neither and is kept; a suggestion the user took up ("I'll try the chana
masala") has its words in the user's turn and is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from memlane.engine import prompts
from memlane.query.keywords import STOPWORDS

#: why a fact was not learnt
SUGGESTION = "suggestion"
QUESTION = "question"
TOO_LONG = "too_long"
MALFORMED = "malformed"
EXAMPLE = "example"
REASONS = (SUGGESTION, QUESTION, TOO_LONG, MALFORMED, EXAMPLE)

_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
#: what a model copies from a prompt's description of the answer instead of answering
_PLACEHOLDER = re.compile(r"ADD\s*\|\s*UPDATE|UPDATE\s*\|\s*DELETE|^\W*(?:fact|\.\.\.|…|text|string)\W*$", re.IGNORECASE)
#: a share of a fact's words: "most of them"
MOST = 0.5


@dataclass(frozen=True)
class Dropped:
    fact: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"event": "DROPPED", "memory": self.fact, "reason": self.reason}


def root(word: str) -> str:
    """A word without its commonest English endings, so "hounds" meets "hound" and "allergies"
    meets "allergy"; other languages lose nothing but the match of their inflections."""
    for ending, replacement in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            return word[: len(word) - len(ending)] + replacement
    return word


def roots(text: str) -> set[str]:
    """The roots of ``text``'s content words (letters only, three or more, not stop words)."""
    return {root(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS}


_EXAMPLE_ROOTS = roots(" ".join((*prompts.EXAMPLE_TURNS, *prompts.EXAMPLE_FACTS, *prompts.STYLE_FACTS)))


class FactCheck:
    """The conversation's words by speaker, to check each fact extracted from it."""

    def __init__(self, turns: Sequence[dict[str, Any]], *, max_chars: int) -> None:
        self.max_chars = max_chars
        self.user = set().union(*(roots(t["content"]) for t in turns if t.get("role") == "user"))
        said_by_assistant = set().union(*(roots(t["content"]) for t in turns if t.get("role") == "assistant"))
        #: words only the assistant used
        self.assistant_only = said_by_assistant - self.user
        #: words of the prompt's example that this conversation never uses
        self.example_only = _EXAMPLE_ROOTS - self.user - said_by_assistant

    def reason(self, fact: str) -> str | None:
        """Why ``fact`` must not be learnt, or None to learn it."""
        text = fact.strip()
        if not _LETTER.search(text) or _PLACEHOLDER.search(text) or text[:1] in "{[":
            return MALFORMED
        if len(text) > self.max_chars:
            return TOO_LONG
        if text.endswith("?"):
            return QUESTION
        words = roots(text)
        if not words:
            return None
        if len(words & self.example_only) / len(words) >= MOST:
            return EXAMPLE
        if self.user:  # (a conversation of the assistant's turns alone is an agent's memory: no test)
            from_user = len(words & self.user) / len(words)
            from_assistant = len(words & self.assistant_only) / len(words)
            if from_assistant >= MOST and from_assistant > from_user:
                return SUGGESTION
        return None

    def split(self, facts: Iterable[str]) -> tuple[list[str], list[Dropped]]:
        """The facts to learn, in order, and the ones dropped with their reasons."""
        kept: list[str] = []
        dropped: list[Dropped] = []
        for fact in facts:
            why = self.reason(fact)
            if why is None:
                kept.append(fact)
            else:
                dropped.append(Dropped(fact, why))
        return kept, dropped
