"""Names in memories: what answers a question that asks for one.

"What was its name?", "Which books did I share?", "Where did I plan to go?": the answer names
something (a quoted title, a place, a person) that the question does not. In a chat store the
turn that opens the topic ("I watched a movie recently and wanted to share it with you", "Today
I want to talk to you about my travel plans") shares the question's words and meaning as well
as the turn that answers it ("It's called "Dangal"", "I want to go to Spain"), and, being short
and on topic, often scores higher; what tells them apart is the name. Measured on MemoryBank dev
and LoCoMo dev (bench/README.md): R@1 0.609 -> 0.696 on top of the role and day bonuses, LoCoMo
recall@10 0.789 -> 0.791 (name + timestamp) and 0.749 -> 0.754 (bare dated text).

A name is a quoted phrase or a capitalised word that does not start a sentence; days, months
and "I" are not names, and neither the scope's own ids nor a name that many of the candidates
share (the user's name in each of the assistant's greetings, a speaker's name in every turn) is
an answer.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Hashable, Iterable, Sequence

#: a quoted title, or a capitalised word that does not start a sentence
_QUOTED = re.compile(r"[\"“”]([^\"“”]{2,60})[\"“”]")
_CAPITAL = re.compile(r"(?<![.!?:\]]\s)(?<!^)(?<![\"“])\b([A-Z][\w'-]+)")
_WORD = re.compile(r"[\w'-]+")
#: capitalised, but not names an answer gives: the pronoun, days, months, and the assistant
#: naming itself ("As an AI, I...")
_NOT_NAMES = frozenset("i i'm i've i'd i'll monday tuesday wednesday thursday friday saturday sunday january february march"
                       " april may june july august september october november december ai".split())
#: a name found in more than this share of the candidates is the scope's own, not an answer
COMMON_NAME = 0.2


#: memory texts whose names are remembered (a scope's memories come back as candidates often;
#: reading 30 candidates' names costs ~0.5 ms, a lookup ~10 us)
CACHE_TEXTS = 50_000
_cache: dict[str, frozenset[str]] = {}


def names_in(text: str) -> frozenset[str]:
    """The names a text uses, lower-cased: quoted phrases and capitalised words inside a sentence."""
    found = _cache.get(text)
    if found is None:
        names = {m.lower() for m in _QUOTED.findall(text)}
        names.update(w.lower() for w in _CAPITAL.findall(text))
        if len(_cache) >= CACHE_TEXTS:
            _cache.clear()
        found = _cache[text] = frozenset(names - _NOT_NAMES)
    return found


def naming(query: str, keys: Sequence[Hashable], texts: Sequence[str], own: Iterable[str | None] = ()) -> set[Hashable]:
    """The keys of the texts that name something the query does not and that few of the
    candidates name. ``own``: the scope's ids (a ``user_id`` is often the user's name: "Hello,
    my name is Frank" answers no question about a name)."""
    asked = {w.lower() for w in _WORD.findall(query)} | {m.lower() for m in _QUOTED.findall(query)}
    asked |= {w.lower() for name in own if name for w in _WORD.findall(name)}
    per_text = [names_in(t) - asked for t in texts]
    found_in = Counter(n for names in per_text for n in names)
    limit = max(1.0, COMMON_NAME * len(texts))
    return {key for key, names in zip(keys, per_text) if any(found_in[n] <= limit for n in names)}
