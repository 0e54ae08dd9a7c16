"""Query text to keyword terms: the part of BM25 that every store shares."""

from __future__ import annotations

import re

# A short English stop list: measured on LoCoMo, removing these from keyword queries matters
# for BM25 precision; the dense signal keeps the function words' meaning anyway.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    s t don should've ll re ve d m o y""".split()
)

_WORD = re.compile(r"\w+", re.UNICODE)


def query_terms(text: str, *, max_terms: int = 32) -> list[str]:
    """Distinct lower-case content words of a query, in order of appearance."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if word not in STOPWORDS and word not in seen:
            seen[word] = None
        if len(seen) >= max_terms:
            break
    return list(seen)
