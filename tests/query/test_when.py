"""Periods named in questions: what recall's time bonus reads."""

from __future__ import annotations

import datetime as dt

import pytest

from memlane.query.when import Period, period_in

UTC = dt.timezone.utc
ANCHOR = dt.datetime(2023, 10, 20, 15, 0, tzinfo=UTC)  # a Friday


def day(y: int, m: int, d: int) -> dt.datetime:
    return dt.datetime(y, m, d, tzinfo=UTC)


@pytest.mark.parametrize(("question", "period"), [
    ("What did Maria donate on May 3, 2023?", Period(day(2023, 5, 3), day(2023, 5, 4))),
    ("What did Gina find on 1 February, 2023?", Period(day(2023, 2, 1), day(2023, 2, 2))),
    ("What did they paint in July 2023?", Period(day(2023, 7, 1), day(2023, 8, 1))),
    ("What setback came in December, 2023?", Period(day(2023, 12, 1), day(2024, 1, 1))),
    ("How often did she go to the beach in 2023?", Period(day(2023, 1, 1), day(2024, 1, 1))),
    ("When did Melanie go camping in June?", Period(month=6)),
    ("On May 6th, I read a book. What was its name?", Period(month=5, day=6)),
    ("What topics did we talk about on April 29th?", Period(month=4, day=29)),
    ("What did I cook on the 3rd of March?", Period(month=3, day=3)),
    ("What did they see during their trip last year?", Period(day(2022, 1, 1), day(2023, 1, 1))),
    ("Where did we eat last week?", Period(day(2023, 10, 9), day(2023, 10, 16))),
    ("What did I read last month?", Period(day(2023, 9, 1), day(2023, 10, 1))),
    ("Where did we go last summer?", Period(day(2023, 6, 1), day(2023, 9, 1))),
    ("Where did we ski last winter?", Period(day(2022, 12, 1), day(2023, 3, 1))),
])
def test_named_periods(question: str, period: Period) -> None:
    assert period_in(question, ANCHOR) == period


@pytest.mark.parametrize("question", ["May I ask what she likes?", "What is her favourite food?", "on 31 February, 2023",
                                      "May 40 people come?"])
def test_no_period_is_read_into_questions_without_one(question: str) -> None:
    assert period_in(question, ANCHOR) is None


def test_relative_periods_ask_for_the_anchor_only_when_needed() -> None:
    asked: list[bool] = []

    def anchor() -> dt.datetime:
        asked.append(True)
        return ANCHOR

    assert period_in("What did she paint in July 2023?", anchor) is not None and not asked
    assert period_in("What did she paint last month?", anchor) == Period(day(2023, 9, 1), day(2023, 10, 1)) and asked


def test_a_month_without_a_year_matches_it_in_any_year() -> None:
    june = period_in("camping in June", ANCHOR)
    assert june is not None and june.contains(day(2021, 6, 30)) and not june.contains(day(2021, 7, 1))


def test_a_day_without_a_year_matches_that_day_of_any_year() -> None:
    sixth = period_in("On May 6th, which book did I mention?", ANCHOR)
    assert sixth is not None and sixth.contains(day(2023, 5, 6)) and sixth.contains(day(2019, 5, 6))
    assert not sixth.contains(day(2023, 5, 7)) and not sixth.contains(day(2023, 6, 6))


@pytest.mark.parametrize(("question", "one_day"), [
    ("On May 6th, I read a book. What was its name?", True),
    ("What did Maria donate on May 3, 2023?", True),
    ("What did they paint in July 2023?", False),
    ("When did Melanie go camping in June?", False),
    ("Where did we eat last week?", False),
])
def test_whether_a_period_is_one_day(question: str, one_day: bool) -> None:
    period = period_in(question, ANCHOR)
    assert period is not None and period.one_day is one_day
