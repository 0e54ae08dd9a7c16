"""Time in a question: the period it names ("in May 2023", "on 8 May, 2023", "last summer"),
so recall can favour memories from that period.

Only explicit, unambiguous expressions are read; anything else leaves recall as it was. Relative
expressions ("last week") count back from an anchor: the scope's latest memory, which is now for
a user who is chatting and the end of the conversation for imported history.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Callable

MONTHS = {name: number for number, name in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"],
    start=1)}
_MONTH = r"(january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)"
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"((?:19|20)\d\d)"
SEASONS = {"spring": (3, 6), "summer": (6, 9), "fall": (9, 12), "autumn": (9, 12)}  # [first month, month after)


@dataclass(frozen=True)
class Period:
    """``[start, end)`` in UTC; ``month`` (and ``day``) alone, with no year named, match that
    month (that day) of any year."""

    start: _dt.datetime | None = None
    end: _dt.datetime | None = None
    month: int | None = None
    day: int | None = None

    @property
    def one_day(self) -> bool:
        """Whether the period is a single day ("on May 6th", "on 8 May, 2023")."""
        if self.month is not None:
            return self.day is not None
        return self.start is not None and self.end is not None and self.end - self.start <= _dt.timedelta(days=1)

    def contains(self, when: _dt.datetime) -> bool:
        if self.month is not None:
            return when.month == self.month and (self.day is None or when.day == self.day)
        return self.start is not None and self.end is not None and self.start <= when < self.end


def _month_number(word: str) -> int:
    word = word.lower()
    return next(number for name, number in MONTHS.items() if name.startswith(word[:3]))


def _utc(year: int, month: int = 1, day: int = 1) -> _dt.datetime:
    return _dt.datetime(year, month, day, tzinfo=_dt.timezone.utc)


def _month_after(year: int, month: int) -> _dt.datetime:
    return _utc(year + month // 12, month % 12 + 1)


def period_in(question: str, anchor: _dt.datetime | Callable[[], _dt.datetime | None] | None = None) -> Period | None:
    """The period ``question`` names, or None. ``anchor`` (default now) is what "last week"
    counts back from; a callable is asked only when the question needs it."""
    text = question.lower()
    for pattern, order in ((rf"\b{_DAY} {_MONTH},? {_YEAR}\b", "dmy"), (rf"\b{_MONTH} {_DAY},? {_YEAR}\b", "mdy")):
        found = re.search(pattern, text)
        if found:
            day, month, year = (found[1], found[2], found[3]) if order == "dmy" else (found[2], found[1], found[3])
            try:
                start = _utc(int(year), _month_number(month), int(day))
            except ValueError:
                return None
            return Period(start, start + _dt.timedelta(days=1))
    for pattern, order in ((rf"\b{_MONTH} {_DAY}\b", "md"), (rf"\b{_DAY} (?:of )?{_MONTH}\b", "dm")):
        found = re.search(pattern, text)  # "on May 6th", "the 27th of April": that day of any year
        if found:
            day, month = (int(found[2]), found[1]) if order == "md" else (int(found[1]), found[2])
            if 1 <= day <= 31:
                return Period(month=_month_number(month), day=day)
    found = re.search(rf"\b{_MONTH},? {_YEAR}\b", text)
    if found:
        month, year = _month_number(found[1]), int(found[2])
        return Period(_utc(year, month), _month_after(year, month))
    found = re.search(r"\blast (week|weekend|month|year|spring|summer|fall|autumn|winter)\b", text)
    if found:
        when = anchor() if callable(anchor) else anchor
        return _last(found[1], when or _dt.datetime.now(_dt.timezone.utc))
    found = re.search(rf"\b(?:in|during|since|throughout) {_YEAR}\b", text) or re.search(rf"\b{_YEAR}\b", text)
    if found:
        year = int(found[1])
        return Period(_utc(year), _utc(year + 1))
    found = re.search(rf"\b(?:in|during|early|late|mid) {_MONTH}\b", text)  # a preposition: "may" alone is a verb
    if found:
        return Period(month=_month_number(found[1]))
    return None


def _last(unit: str, anchor: _dt.datetime) -> Period:
    today = _utc(anchor.year, anchor.month, anchor.day)
    if unit in ("week", "weekend"):
        monday = today - _dt.timedelta(days=today.weekday())
        return Period(monday - _dt.timedelta(days=7), monday)
    if unit == "month":
        first = _utc(anchor.year, anchor.month)
        previous = _utc(anchor.year - 1, 12) if anchor.month == 1 else _utc(anchor.year, anchor.month - 1)
        return Period(previous, first)
    if unit == "year":
        return Period(_utc(anchor.year - 1), _utc(anchor.year))
    if unit == "winter":  # the last December-February that has ended
        year = anchor.year if anchor.month >= 3 else anchor.year - 1
        return Period(_utc(year - 1, 12), _utc(year, 3))
    first, after = SEASONS[unit]
    year = anchor.year if anchor.month >= after else anchor.year - 1
    return Period(_utc(year, first), _utc(year, after))


def parse_time(text: str | None) -> _dt.datetime | None:
    """A stored ISO 8601 timestamp as an aware datetime (UTC when it names no zone)."""
    try:
        when = _dt.datetime.fromisoformat(str(text))
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)
