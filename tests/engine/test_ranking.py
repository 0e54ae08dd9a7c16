"""Re-scoring the fused candidates with what their records say (memlane.engine.ranking.boosted):
each bonus shown on two candidates it reorders."""

from __future__ import annotations

from memlane.config import RetrievalConfig
from memlane.engine.ranking import Ranked, boosted
from memlane.query.intent import asked_role
from memlane.query.when import period_in
from memlane.records import MemoryRecord


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
