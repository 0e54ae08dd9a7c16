"""mem0's search options that are more than a number (``threshold`` and ``top_k`` are
``Recall``'s): ``fields`` (which keys each result keeps), ``categories`` (memories whose
``metadata.categories`` names one of them), ``reference_date`` (what "last week" in a query
counts back from) and ``latest_only``. Each is checked here, so every face refuses the same
bad input with the same 400."""

from __future__ import annotations

import datetime as _dt
from typing import Any, Mapping, Sequence

from memlane.engine.validation import check_flag, check_timestamp
from memlane.errors import ValidationError
from memlane.query.filters import AnyOf, Condition, Filter
from memlane.query.when import parse_time

#: the keys a search result can have (``SearchHit.to_dict``); ``fields`` picks among them
RESULT_FIELDS = ("id", "memory", "score", "rerank_score", "hybrid_score", "metadata", "user_id", "agent_id", "run_id",
                 "created_at", "updated_at", "expiration_date", "immutable", "categories")
#: what a result without the key means by its absence (the keys present only on some memories)
_ABSENT = {"immutable": False}
#: categories one search may name (each is a condition of the store's filter)
MAX_CATEGORIES = 100


def check_fields(fields: Any) -> tuple[str, ...] | None:
    """``fields``: a non-empty list of result keys, or None (every key)."""
    if fields is None:
        return None
    if isinstance(fields, str) or not isinstance(fields, Sequence) or not fields or not all(isinstance(f, str) for f in fields):
        raise ValidationError("fields must be a non-empty list of result field names", param="fields")
    unknown = [f for f in fields if f not in RESULT_FIELDS]
    if unknown:
        raise ValidationError(f"fields names {', '.join(map(repr, unknown))}, which a result does not have; "
                              f"a result has {', '.join(RESULT_FIELDS)}", param="fields")
    return tuple(dict.fromkeys(fields))


def project(result: Mapping[str, Any], fields: tuple[str, ...] | None) -> dict[str, Any]:
    """``result`` with only ``fields`` (each of them, the absent ones as their default), in that order."""
    if fields is None:
        return dict(result)
    return {f: result.get(f, _ABSENT.get(f)) for f in fields}


def categories_filter(categories: Any) -> Filter | None:
    """Memories whose ``metadata.categories`` list holds any of ``categories`` (mem0 keeps a
    memory's categories as a list; memlane reads them from its metadata)."""
    if categories is None:
        return None
    if isinstance(categories, str) or not isinstance(categories, Sequence) or not categories \
            or not all(isinstance(c, str) and c.strip() for c in categories):
        raise ValidationError("categories must be a non-empty list of category names", param="categories")
    if len(categories) > MAX_CATEGORIES:
        raise ValidationError(f"categories may name at most {MAX_CATEGORIES}", param="categories")
    names = tuple(dict.fromkeys(c.strip() for c in categories))
    # ``contains``: an element of a list (a single string: a part of it, as the filter language has it)
    return AnyOf(tuple(Condition("categories", "contains", c) for c in names))


def reference_time(reference_date: Any) -> _dt.datetime | None:
    """``reference_date`` (``YYYY-MM-DD``, ISO 8601 or Unix seconds, as mem0 sends it) as the
    instant relative dates in a query count back from; None: the scope's latest memory."""
    try:
        return parse_time(check_timestamp(reference_date)) if reference_date is not None else None
    except ValidationError:
        raise ValidationError(f"reference_date {reference_date!r:.80} is not a date (YYYY-MM-DD), ISO 8601 text or Unix seconds",
                              param="reference_date") from None


def check_latest_only(latest_only: Any) -> None:
    """``latest_only``: accepted and true already. memlane reconciles in place (an UPDATE
    rewrites the memory, history keeps the old text), so every memory a search finds is its
    latest version; mem0's v3 pipeline, which only adds, needs the option to hide older ones."""
    check_flag(latest_only, "latest_only", optional=True)
