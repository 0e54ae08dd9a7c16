"""Compile the filter AST to a Qdrant filter over the point payload.

Qdrant evaluates what it can express with our meaning (equality and membership of strings,
integers and booleans, numeric ranges, AND/OR/NOT), so a filter narrows the HNSW search
inside Qdrant instead of after its top-k cut. Conditions Qdrant cannot express the same way
(substring ``contains``/``icontains``, string ordering, ``exists``, ``None`` and float
equality, record fields other than the scope and the id) become a ``HasId`` over the ids the
SQL store says match that one condition, so they still apply before the cut. Expiry
(``Unexpired``) is a ``must_not`` ``HasId`` over the expired memories SQL lists.

Qdrant matches a list-valued field when any element matches, where the SQL stores compare the
whole value: a native condition can only match more than SQL. That is harmless where it is
asserted (the store re-checks Qdrant's hits against SQL, which has the last word) but would
drop rows under a negation, so negated conditions (``ne``, ``nin``, inside ``NOT``) always take
the exact ``HasId`` path.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from memlane.query.filters import AllOf, AnyOf, Condition, Filter, Negation, Unexpired

#: payload keys Qdrant parses without surprises (``a.b`` nests; brackets and quotes would not)
_KEY_PART = re.compile(r"^[A-Za-z0-9_\-]+$")
_RANGE = {"gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte"}
_PAYLOAD_FIELDS = {"user_id": "user_id", "agent_id": "agent_id", "run_id": "run_id", "id": "memory_id"}


def _exact_scalar(value: Any) -> bool:
    return isinstance(value, (str, bool, int))


def _payload_key(c: Condition) -> str | None:
    if c.is_record_field:
        return _PAYLOAD_FIELDS.get(c.field)
    if all(_KEY_PART.match(part) for part in c.path):
        return "metadata." + ".".join(c.path)
    return None


def _positive(c: Condition) -> tuple[Condition, bool]:
    """``ne``/``nin`` as the negation of ``eq``/``in`` (the SQL meanings are exact complements)."""
    if c.op == "ne":
        return Condition(c.field, "eq", c.value), True
    if c.op == "nin":
        return Condition(c.field, "in", c.value), True
    return c, False


def _native(c: Condition, m: Any) -> Any | None:
    """The Qdrant condition matching at least what ``c`` matches, or None when there is none."""
    key = _payload_key(c)
    if key is None:
        return None
    op, v = c.op, c.value
    if c.is_record_field and op not in ("eq", "in"):
        return None
    if op == "eq" and _exact_scalar(v):
        return m.FieldCondition(key=key, match=m.MatchValue(value=v))
    if op == "in":
        values = list(v)
        if not values or not all(_exact_scalar(x) for x in values):
            return None
        if all(isinstance(x, str) for x in values) or all(isinstance(x, int) and not isinstance(x, bool) for x in values):
            return m.FieldCondition(key=key, match=m.MatchAny(any=values))
        return m.Filter(should=[m.FieldCondition(key=key, match=m.MatchValue(value=x)) for x in values])
    if op in _RANGE and isinstance(v, (int, float)) and not isinstance(v, bool):
        return m.FieldCondition(key=key, range=m.Range(**{_RANGE[op]: v}))
    return None


def compile_filter(node: Filter, models: Any, sql_ids: Callable[[Filter], list[str]], point_id: Callable[[str], str],
                   *, negated: bool = False) -> Any:
    """Return a Qdrant ``Filter``. ``sql_ids(condition)`` lists the memory ids (in the searched
    scope) that match a condition; ``point_id`` maps them to point ids."""
    m = models
    if isinstance(node, Condition):
        positive, flipped = _positive(node)
        if flipped:
            return m.Filter(must_not=[compile_filter(positive, m, sql_ids, point_id, negated=not negated)])
        native = None if negated else _native(positive, m)
        if native is None:
            native = m.HasIdCondition(has_id=[point_id(i) for i in sql_ids(positive)])
        return native if isinstance(native, m.Filter) else m.Filter(must=[native])
    if isinstance(node, Negation):
        return m.Filter(must_not=[compile_filter(node.item, m, sql_ids, point_id, negated=not negated)])
    if isinstance(node, Unexpired):  # every memory but the (few) expired ones, which SQL lists exactly
        return m.Filter(must_not=[m.HasIdCondition(has_id=[point_id(i) for i in sql_ids(Negation(node))])])
    assert isinstance(node, (AllOf, AnyOf))
    parts = [compile_filter(item, m, sql_ids, point_id, negated=negated) for item in node.items]
    return m.Filter(must=parts) if isinstance(node, AllOf) else m.Filter(should=parts)
