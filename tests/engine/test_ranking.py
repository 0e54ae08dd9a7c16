"""Re-scoring the fused candidates with what their records say (memlane.engine.ranking.boosted):
each bonus shown on two candidates it reorders."""

from __future__ import annotations

import dataclasses
import math
import random

from memlane.config import RetrievalConfig
from memlane.engine.ranking import Ranked, boosted, fuse
from memlane.query.intent import asked_role
from memlane.query.when import period_in
from memlane.records import MemoryRecord
from memlane.stores.base import Candidates


def record(key: str, text: str, role: str | None = "user", created_at: str = "2023-05-01T12:00:00+00:00") -> MemoryRecord:
    return MemoryRecord(id=key, memory=text, hash=key, metadata={"role": role} if role else {}, user_id="u", created_at=created_at)


def order(records: list[MemoryRecord], query: str, settings: RetrievalConfig, named: set[str] | None = None) -> list[str]:
    fused = [Ranked(r.id, 0.9 - 0.15 * i, None, None) for i, r in enumerate(records)]  # the first fused higher
    period = period_in(query, None)
    role = asked_role(query) if settings.role_bonus else None
    return [r.key for r in boosted(fused, {r.id: r for r in records}, query, period, settings, None, named, role)]


def test_a_question_naming_one_day_puts_that_days_memory_first() -> None:
    records = [record("soup", "I cooked a big pot of tomato soup", created_at="2023-05-01T19:00:00+00:00"),
               record("dumplings", "Made dumplings for dinner", created_at="2023-05-04T19:00:00+00:00")]
    assert order(records, "What did I cook on May 4th?", RetrievalConfig()) == ["dumplings", "soup"]
    # a month is not a day: only the time bonus, which both memories get
    assert order(records, "What did I cook in May?", RetrievalConfig()) == ["soup", "dumplings"]
    assert order(records, "What did I cook on May 4th?", RetrievalConfig(day_bonus=0)) == ["soup", "dumplings"]


def test_the_role_the_question_asks_about_comes_first() -> None:
    records = [record("reply", "As an AI I enjoy every kind of music", role="assistant"),
               record("turn", "My favourite music is rock", role="user")]
    assert order(records, "What music do I like?", RetrievalConfig()) == ["turn", "reply"]
    assert order(records, "What music do I like?", RetrievalConfig(role_bonus=0)) == ["reply", "turn"]
    assert order(records, "What music did Caroline like?", RetrievalConfig()) == ["reply", "turn"]  # nobody's in particular
    # a learnt fact has no role: it is the user's
    learnt = [records[0], record("fact", "Likes rock music", role=None)]
    assert order(learnt, "What music do I like?", RetrievalConfig()) == ["fact", "reply"]
    assert order(learnt, "What music do you like?", RetrievalConfig()) == ["reply", "fact"]


def test_a_memory_naming_what_the_question_asks_for_gains_the_name_bonus() -> None:
    records = [record("opener", "I watched a movie recently and wanted to share it with you"),
               record("answer", 'It is called "Dangal", about a wrestling family')]
    assert order(records, "I once shared a movie with you, what was its name?", RetrievalConfig(), named={"answer"}) == ["answer", "opener"]
    assert order(records, "I once shared a movie with you, what was its name?", RetrievalConfig(name_bonus=0), named={"answer"}) == ["opener", "answer"]


def reference_fuse(found: Candidates, settings: RetrievalConfig) -> list[tuple[object, float]]:
    """The fusion's definition, one candidate at a time, sorted best first (ties by key)."""
    keys = found.dense.keys() | found.keyword.keys()
    if settings.fusion == "rrf":
        scores = dict.fromkeys(keys, 0.0)
        for signal in (found.dense, found.keyword):
            for rank, key in enumerate(sorted(signal, key=signal.__getitem__, reverse=True), start=1):
                scores[key] += 1.0 / (settings.rrf_k + rank)
    else:
        w, best = settings.keyword_weight, max(found.keyword.values(), default=0.0)
        scores = {}
        for key in keys:
            d = max(found.dense.get(key) or 0.0, 0.0)
            k = found.keyword.get(key, 0.0) / best if best > 0 else 0.0
            scores[key] = (1.0 - w) * d + w * k
    return sorted(scores.items(), key=lambda item: (-item[1], str(item[0])))


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def test_fuse_is_its_definition_with_ties_zeros_negatives_and_nan() -> None:
    """Scores bit for bit and the order (ties by key), with the whole list or a prefix, for
    the weighted sum (a best keyword score of 0, negative, or none; negative and missing
    cosines; ties) and for rrf. A NaN cosine keeps its NaN score (its place is undefined)."""
    rng = random.Random(5)
    for trial in range(400):
        n = rng.choice([1, 2, 5, 40])
        values = [0.0, 0.5, 0.5, -0.25, 1.0, 3.75, 1e-300]
        dense = {f"k{i}": rng.choice(values + [rng.random()]) for i in range(n) if rng.random() < .8}
        keyword = {f"k{i}": rng.choice(values + [rng.random() * 9]) for i in range(n) if rng.random() < .5}
        if trial % 7 == 0:
            keyword = dict.fromkeys(keyword, 0.0)  # no keyword match worth anything
        if trial % 11 == 0 and dense:
            dense[next(iter(dense))] = math.nan
        found = Candidates(dense=dense, keyword=keyword)
        for settings in (RetrievalConfig(), RetrievalConfig(keyword_weight=0.3), RetrievalConfig(keyword_weight=0.0),
                         RetrievalConfig(keyword_weight=1.0), RetrievalConfig(fusion="rrf")):
            expected = reference_fuse(found, settings)
            for limit in (None, 3):
                got = fuse(found, settings, limit=limit)
                want = expected if limit is None else expected[:limit]
                assert len(got) == len(want)
                assert all(same(r.score, dict(expected)[r.key]) for r in got)
                if not any(math.isnan(score) for _, score in expected):  # a NaN has no place: sorted and a heap differ
                    assert [(r.key, r.score) for r in got] == want
                assert all(r.dense == dense.get(r.key) or same(r.dense, dense.get(r.key)) for r in got)
                assert all(r.keyword == keyword.get(r.key) and r.hybrid is None for r in got)


def test_a_boosted_candidate_keeps_every_field_but_its_score() -> None:
    """A bonus changes the score and nothing else: what ``dataclasses.replace`` would build,
    every field (a reranked one's ``hybrid`` too), and the same order with ties by key."""
    records = [record("a", "x"), record("b", "y"), record("c", "z", role="assistant")]
    fused = [Ranked("a", 0.5, 0.4, 2.0, 0.7), Ranked("b", 0.5, None, 1.0), Ranked("c", 0.9, 0.9, None, 0.1)]
    settings = RetrievalConfig(alignment_weight=0.25)
    aligned = {"a": 0.5, "b": 0.5, "c": 0.0}
    query = "What music do I like?"
    out = boosted(fused, {r.id: r for r in records}, query, None, settings, aligned, None, asked_role(query))
    bonus = {"a": 0.25 * 0.5 + settings.role_bonus, "b": 0.25 * 0.5 + settings.role_bonus, "c": 0.0}  # c: the assistant's
    expected = sorted((dataclasses.replace(r, score=r.score + bonus[r.key]) for r in fused), key=lambda r: (-r.score, str(r.key)))
    assert out == expected
    assert [dataclasses.asdict(r) for r in out] == [dataclasses.asdict(r) for r in expected]


def test_a_memory_stating_the_stance_the_question_asks_about_gains_the_stance_bonus() -> None:
    records = [record("cuisine", "My favourite cuisine is Indian"), record("allergy", "I am allergic to cheese")]
    fused = [Ranked(r.id, 0.5 - 0.05 * i, None, None) for i, r in enumerate(records)]
    lookup = {r.id: r for r in records}

    def ranked(settings: RetrievalConfig) -> list[str]:
        return [r.key for r in boosted(fused, lookup, "Which foods must I avoid?", None, settings, agreeing={"allergy"})]

    assert ranked(RetrievalConfig()) == ["allergy", "cuisine"]
    assert ranked(RetrievalConfig(stance_bonus=0)) == ["cuisine", "allergy"]
