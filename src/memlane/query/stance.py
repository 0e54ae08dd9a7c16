"""Stance: whether a question asks what the user avoids or what they like, and whether a memory
states an aversion or a liking.

"Which foods must I avoid?" is answered by "I am allergic to cheese", not by "My favourite cuisine
is Indian", yet word vectors put "foods" next to "cuisine" and treat "avoid" and "favourite" as
equally far from everything: both the dense cosine and term alignment rank the cuisine first
(bench/README.md, "Recall by meaning"). What tells the two memories apart is their stance
towards the thing, which no signal that averages word meanings reads. The rule is lexical and
small: a question that asks what to avoid, what one can't / mustn't / shouldn't do, or what one
dislikes, hates or is allergic to asks for an aversion; one that asks what one loves, enjoys,
likes or prefers, or one's favourite, asks for a liking. A memory states an aversion with an
allergy, an intolerance, a dislike, a fear, or a negated eating / liking verb ("can't eat",
"don't like"), and a liking with love, enjoy, favourite, prefer, fond of. A negated liking
("I don't like working out") is an aversion, never a liking.
"""

from __future__ import annotations

import re
from typing import Literal

from memlane.query.intent import last_question

Stance = Literal["aversion", "liking"]

# (all read from lower-cased text: case-blind patterns cost 2-3x as much)
_NOT = r"(?:can't|cannot|can not|couldn't|mustn't|must not|shouldn't|should not|won't|don't|doesn't|didn't|do not|does not|did not|never|not)"
#: a negated liking or eating verb: "don't like", "can't eat", "never drink", "doesn't enjoy"
_NEGATED = re.compile(rf"\b{_NOT}\s+(?:really\s+|even\s+|ever\s+)?(?:like|likes|liked|enjoy\w*|lov(?:e|es|ed|ing)|eat|eats|drink|drinks|"
                      r"stand|bear|tolerate|digest|care for)\b")
#: what a memory says when it states an aversion, besides a negated liking
_AVERSE = re.compile(r"\b(?:allerg\w*|intoleran\w*|hate[sd]?|hating|dislik\w*|detest\w*|loath\w*|avoid\w*|"
                     r"steer(?:s|ed|ing)? clear|stay(?:s|ed|ing)? away|keep(?:s|ing)? away|kept away|not a fan|"
                     r"afraid of|scared of|terrified of|phobia|sensitive to)\b")
#: a liking; "like" only as a verb (after a subject, a helper or "to"), not the preposition
#: ("what was it like", "it looks like rain"): looked for apart, only in a text with "like"
#: (one pattern of both costs twice as much)
_LIKING = re.compile(r"\b(?:lov(?:e|es|ed|ing)|enjoy\w*|favou?rite\w*|prefer\w*|fond of|adore[sd]?|passionate|a fan of|like[sd])\b")
_LIKE_VERB = re.compile(r"\b(?:i|we|you|they|he|she|do|does|did|would|to|really|also)\s+like\b|'d like\b")
#: what a question says when it asks for an aversion, besides a negated liking: "what must I
#: avoid?", "what can't I eat?", "what is Joanna allergic to?"
_ASKS_AVERSION = re.compile(r"\b(?:avoid\w*|steer clear|stay away|keep away|allerg\w*|intoleran\w*|hate[sd]?|dislik\w*|"
                            r"afraid of|scared of|can't|cannot|can not|mustn't|must not|shouldn't|should not|"
                            r"not (?:allowed|supposed|meant) to)\b")
#: "can't" that is about the asking, not the thing asked about: "I can't remember what..."
_META = re.compile(r"\b(?:can't|cannot|can not)\s+(?:remember|recall|find|think of|recollect)\b")
#: a part of every word the patterns above start from: a text with none of them states and asks
#: no stance (most do not; looking costs ~2 us, the patterns ~10-30 us)
_CUES = ("n't", "not", "never", "cannot", "allerg", "intoleran", "hate", "hating", "dislik", "detest", "loath", "avoid",
         "clear", "away", "afraid", "scared", "terrified", "phobia", "sensitive", "lov", "enjoy", "favo", "prefer", "fond",
         "ador", "passion", "fan of", "like")
#: a question and a memory are read from their last / first this many characters (a chat
#: turn may be megabytes long)
MAX_CHARS = 1000

#: memory texts whose stances are remembered (candidates come back often: ~20 us a text
#: read, ~0.3 us looked up)
CACHE_TEXTS = 50_000
_cache: dict[str, frozenset[Stance]] = {}


def _cued(text: str) -> bool:
    for cue in _CUES:  # (a plain loop: any() over a generator costs 1.5x, one regex of the cues 2x)
        if cue in text:
            return True
    return False


def _liking(text: str) -> bool:
    return _LIKING.search(text) is not None or ("like" in text and _LIKE_VERB.search(text) is not None)


def asked_stance(question: str) -> Stance | None:
    """``"aversion"`` when the question asks what the user avoids, can't or mustn't have or
    dislikes; ``"liking"`` when it asks what they love, enjoy, like or prefer; else None. Read
    from the question proper (its last sentence ending in "?", or the whole text): in "I love
    Indian food. Dinner ideas?" the liking is said, not asked about."""
    question = question[-MAX_CHARS:]
    text = (last_question(question) or question).lower().replace("\u2019", "'")
    if not _cued(text):
        return None
    text = _META.sub(" ", text)
    if _NEGATED.search(text) or _ASKS_AVERSION.search(text):
        return "aversion"
    if _liking(text):
        return "liking"
    return None


def stances_in(text: str) -> frozenset[Stance]:
    """The stances a memory states: an aversion (an allergy, an intolerance, a dislike, a
    negated liking), a liking (love, enjoy, favourite, prefer), both, or neither."""
    found = _cache.get(text)
    if found is None:
        head = text[:MAX_CHARS].lower().replace("\u2019", "'")
        stances: set[Stance] = set()
        cued = _cued(head)
        negated = cued and _NEGATED.search(head) is not None
        if negated or (cued and _AVERSE.search(head)):
            stances.add("aversion")
        if cued and _liking(_NEGATED.sub(" ", head) if negated else head):
            stances.add("liking")
        if len(_cache) >= CACHE_TEXTS:
            _cache.clear()
        found = _cache[text] = frozenset(stances)
    return found
