"""The check after the memory model: which extracted facts are not facts about the user.

Small local models, asked for facts about the user, also hand back the assistant's suggestions
("Try chana masala"), general knowledge the assistant stated ("Beagles love long walks"),
questions, the prompt's own example, and sentences that run on. Each is a memory that later
recalls would inject as if the user had said it, and the model then repeats it, and extraction
learns it back. So every extracted fact is checked against the conversation it came from, by its
words, before it can reach the store; what is dropped is counted with its reason and shown where
learning is shown (the learner's status, the recall log, ``/ui/chats``).

The word tests are one-sided: a fact is dropped as the assistant's when at least half of its
content words occur in the assistant's turns and not in the user's (and no fewer than occur in
the user's), or when it is written as advice ("Should ...", "Try ..."); when the user asked a
question, a fact holding more than a third of its words, or a number, only the answer used
restates the answer (general knowledge: "Seattle in November is cool and rainy"). A paraphrase of the user ("Does not eat meat" from
"I'm vegetarian") shares words with neither and is kept; a suggestion the user took up ("I'll
try the chana masala") has its words in the user's turn and is kept. Questions ("How to make a
pivot table"), the topic of the user's own question restated ("Stretching routine after a run"
from "What's a good stretching routine after a run?"), pleasantries ("Good morning", "Haha
thanks") and facts that say "it" and little else ("Loved it", "Has been at it for two years":
read later, nobody knows what "it" was) are not facts either, nor is what the user said about
someone else written as the user's own ("Is obsessed with dinosaurs" from "...my son Leo, and
he's obsessed with dinosaurs": "Son Leo loves dinosaurs" names him and is kept).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from memlane.engine import prompts
from memlane.query.keywords import STOPWORDS

#: why a fact was not learnt
SUGGESTION = "suggestion"
#: the assistant's answer to the user's question, restated (general knowledge)
ANSWER = "answer"
SMALL_TALK = "small_talk"
QUESTION = "question"
TOO_LONG = "too_long"
MALFORMED = "malformed"
EXAMPLE = "example"
#: "it" or "them" with at most ``VAGUE_WORDS`` content words: what it stands for is lost
VAGUE = "vague"
#: a fact the user told about someone else ("he's ...", "she has ..."), written without them
SOMEONE_ELSE = "someone_else"
REASONS = (SUGGESTION, ANSWER, SMALL_TALK, QUESTION, TOO_LONG, MALFORMED, EXAMPLE, VAGUE, SOMEONE_ELSE)
VAGUE_WORDS = 2

#: content words of three letters or more, and numbers (an answer's "70 to 99" is its own)
_WORD = re.compile(r"[^\W\d_]{3,}|\d+", re.UNICODE)
#: how advice starts, and how a question does: neither is a fact about the user
_ADVICE = re.compile(r"^(?:should|try|consider|could|might|maybe|perhaps|you|your|let's|don't forget)\b", re.IGNORECASE)
_QUESTION_WORD = re.compile(r"^(?:how|what|why|when|where|who|whom|which|whether)\b", re.IGNORECASE)
#: how a sentence that is a question starts (not "I'm learning Japanese, what helps?": a statement first)
_ASKS = re.compile(r"^\W*(?:how|what|what's|why|when|where|who|which|can|could|should|would|will|is|are|do|does|did|any|have|has)\b",
                   re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_REFERENCE = re.compile(r"\b(?:it|them)\b", re.IGNORECASE)
#: where a clause ends, and how one about someone else starts
_CLAUSE_END = re.compile(r"[,;:.!?]|\b(?:and|but|so|because|while)\b", re.IGNORECASE)
_THIRD_PERSON = re.compile(r"^\W*(?:he|she|they|he's|she's|they're|his|her|their)\b", re.IGNORECASE)
#: the words greetings, thanks and pleasantries are made of
SMALL_TALK_WORDS = frozenset("""hello hey good morning afternoon evening night thank thanks haha lol sweet welcome bye
    goodbye nice great cool okay sure yes yeah sorry please cheers awesome glad happy kind lovely help anytime""".split())
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
#: what a model copies from a prompt's description of the answer instead of answering
_PLACEHOLDER = re.compile(r"ADD\s*\|\s*UPDATE|UPDATE\s*\|\s*DELETE|^\W*(?:fact|\.\.\.|…|text|string)\W*$", re.IGNORECASE)
#: a share of a fact's words: "most of them"
MOST = 0.5
#: after a question, a fact with more than this share of words only the answer used restates it
#: (one word in three is the model naming the user's thing in the assistant's word: "dog" for "pup")
ANSWERED = 1 / 3


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


_SMALL_TALK_ROOTS = {root(w) for w in SMALL_TALK_WORDS}
_EXAMPLE_ROOTS = roots(" ".join((*prompts.EXAMPLE_TURNS, *prompts.EXAMPLE_FACTS, *prompts.STYLE_FACTS)))


def _words_split(pieces: Iterable[str], chosen: Callable[[str], bool]) -> tuple[set[str], set[str]]:
    """The roots of the pieces ``chosen`` picks, and of the rest."""
    picked: set[str] = set()
    rest: set[str] = set()
    for piece in pieces:
        (picked if chosen(piece) else rest).update(roots(piece))
    return picked, rest


class FactCheck:
    """The conversation's words by speaker, to check each fact extracted from it."""

    def __init__(self, turns: Sequence[dict[str, Any]], *, max_chars: int) -> None:
        self.max_chars = max_chars
        self.user = set().union(*(roots(t["content"]) for t in turns if t.get("role") == "user"))
        said_by_user = [t["content"] for t in turns if t.get("role") == "user"]
        #: words of the user's questions, and of the rest of what the user said
        self.user_asked, self.user_stated = _words_split(
            (s for text in said_by_user for s in _SENTENCE_END.split(text.strip())),
            lambda s: s.rstrip().endswith("?") and _ASKS.match(s) is not None)
        #: words the user said only of someone else ("he's obsessed with dinosaurs")
        of_others, of_anyone_else = _words_split((c for text in said_by_user for c in _CLAUSE_END.split(text)),
                                                 lambda c: _THIRD_PERSON.match(c) is not None)
        self.of_others = of_others - of_anyone_else
        said_by_assistant = set().union(*(roots(t["content"]) for t in turns if t.get("role") == "assistant"))
        #: words only the assistant used
        self.assistant_only = said_by_assistant - self.user
        #: the user asked something: a fact holding words only the answer used restates the answer
        self.asked = any(t.get("role") == "user" and "?" in t["content"] for t in turns)
        #: words of the prompt's example that this conversation never uses
        self.example_only = _EXAMPLE_ROOTS - self.user - said_by_assistant

    def reason(self, fact: str) -> str | None:
        """Why ``fact`` must not be learnt, or None to learn it."""
        text = fact.strip()
        if not _LETTER.search(text) or _PLACEHOLDER.search(text) or text[:1] in "{[":
            return MALFORMED
        if len(text) > self.max_chars:
            return TOO_LONG
        if text.endswith("?") or _QUESTION_WORD.match(text):
            return QUESTION
        words = roots(text)
        if not words:
            return None
        if words <= _SMALL_TALK_ROOTS:
            return SMALL_TALK
        if _REFERENCE.search(text) and len(words) <= VAGUE_WORDS:
            return VAGUE
        if words <= _EXAMPLE_ROOTS and len(words & self.example_only) / len(words) >= MOST:
            return EXAMPLE  # (a copy is made of the example's words only: "Works in Austin" is not one)
        if self.user:  # (a conversation of the assistant's turns alone is an agent's memory: no test)
            if _ADVICE.match(text):
                return SUGGESTION
            if words <= self.user_asked and len(words & self.user_stated) / len(words) < MOST:
                return QUESTION  # the user's question, restated as a topic
            if words <= self.of_others:
                return SOMEONE_ELSE
            answered = words & self.assistant_only
            if self.asked and (len(answered) / len(words) > ANSWERED or any(w.isdigit() for w in answered)):
                return ANSWER
            from_user = len(words & self.user) / len(words)
            from_assistant = len(words & self.assistant_only) / len(words)
            if from_assistant >= MOST and from_assistant >= from_user:
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
