"""The mem0-compatible filter language, parsed once into a small AST that each store compiles.

Parsing is strict: an unknown operator, a wrong value type or a malformed group is a
``FilterError`` that says where, never a filter that silently matches everything.

    {"category": "food"}                         equality
    {"priority": {"gte": 3, "lt": 9}}            operators, several mean AND
    {"tags": {"contains": "x"}}                  substring, or element of a list field
    {"AND": [...]}, {"OR": [...]}, {"NOT": {...}}
    {"category": "*"}                            the field is present
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any, Mapping, Union

from memlane.errors import FilterError
from memlane.records import SCOPE_FIELDS

RECORD_FIELDS = frozenset({*SCOPE_FIELDS, "created_at", "updated_at", "id", "memory"})
OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "icontains")
_LOGICAL = {"AND": "AND", "OR": "OR", "NOT": "NOT", "$and": "AND", "$or": "OR", "$not": "NOT"}

Scalar = Union[str, int, float, bool, None]

#: Nesting of AND/OR/NOT groups a filter may have; deeper ones are refused before any store
#: sees them (SQLite's parser overflows near 50 nested NOTs, Python's stack near 400).
MAX_DEPTH = 16
#: Conditions one filter may hold.
MAX_CONDITIONS = 256
#: Values one ``in``/``nin`` list may hold.
MAX_IN_VALUES = 1_000
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Condition:
    field: str
    op: str  # one of OPERATORS, or "exists"
    value: Any = None

    @property
    def is_record_field(self) -> bool:
        return self.field in RECORD_FIELDS

    @property
    def path(self) -> tuple[str, ...]:
        """Metadata path: ``"a.b"`` addresses ``metadata["a"]["b"]``."""
        return tuple(self.field.split("."))


@dataclass(frozen=True)
class AllOf:
    items: tuple[Filter, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Filter, ...]


@dataclass(frozen=True)
class Negation:
    item: Filter


@dataclass(frozen=True)
class Unexpired:
    """The memories not expired at ``now`` (ISO 8601 UTC): those without an expiration, or with
    one after ``now`` (``MemoryRecord.expiration_date``). The engine adds it to a search or a
    list unless expired memories are asked for; it is never parsed from a caller's filter."""

    now: str


Filter = Union[Condition, AllOf, AnyOf, Negation, Unexpired]


def all_of(*filters: Filter | None) -> Filter | None:
    """The filters that are given, all of them (None when none is)."""
    given = tuple(f for f in filters if f is not None)
    return None if not given else given[0] if len(given) == 1 else AllOf(given)


def _scalar(value: Any, where: str, *, allow_none: bool = True) -> Scalar:
    if isinstance(value, (_dt.datetime, _dt.date)):
        return _iso(value)
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise FilterError(f"filter {where}: integer {value} is outside the 64-bit range stores hold", param="filters")
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise FilterError(f"filter {where}: {value} is not a finite number", param="filters")
        return value
    raise FilterError(
        f"filter {where}: expected a string, number or boolean, got {type(value).__name__}",
        param="filters",
    )


def _iso(value: _dt.date) -> str:
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.astimezone(_dt.timezone.utc).isoformat()
    return value.isoformat()


def _condition(field: str, op: str, value: Any) -> Condition:
    where = f"{field!r} {op!r}"
    if op not in OPERATORS:
        raise FilterError(
            f"unknown filter operator {op!r} on field {field!r}; "
            f"valid operators: {', '.join(OPERATORS)}",
            param="filters",
        )
    if op in ("in", "nin"):
        if not isinstance(value, (list, tuple)):
            raise FilterError(f"filter {where}: expects a list of values", param="filters")
        if len(value) > MAX_IN_VALUES:
            raise FilterError(f"filter {where}: at most {MAX_IN_VALUES} values", param="filters")
        return Condition(field, op, tuple(_scalar(v, where, allow_none=False) for v in value))
    if op in ("contains", "icontains"):
        if not isinstance(value, str):
            raise FilterError(f"filter {where}: expects a string", param="filters")
        return Condition(field, op, value)
    if op in ("gt", "gte", "lt", "lte"):
        v = _scalar(value, where, allow_none=False)
        if isinstance(v, bool):
            raise FilterError(f"filter {where}: cannot order booleans", param="filters")
        return Condition(field, op, v)
    return Condition(field, op, _scalar(value, where))


class _Budget:
    """What one parse may still spend: conditions in total."""

    def __init__(self) -> None:
        self.conditions = 0

    def spend(self) -> None:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise FilterError(f"filters may hold at most {MAX_CONDITIONS} conditions", param="filters")


def _field(field: Any, spec: Any, budget: _Budget) -> Filter:
    budget.spend()
    if not isinstance(field, str) or not field or any(not part for part in field.split(".")):
        raise FilterError(f"filter field name must be a non-empty string, got {field!r}", param="filters")
    if isinstance(spec, Mapping):
        if not spec:
            raise FilterError(f"filter on {field!r} has no operator", param="filters")
        conds = [_condition(field, str(op), value) for op, value in spec.items()]
        return conds[0] if len(conds) == 1 else AllOf(tuple(conds))
    if isinstance(spec, (list, tuple)):
        return _condition(field, "in", spec)
    if spec == "*":
        return Condition(field, "exists")
    return _condition(field, "eq", spec)


def _group(key: str, value: Any, depth: int, budget: _Budget) -> Filter:
    kind = _LOGICAL[key]
    if depth >= MAX_DEPTH:
        raise FilterError(f"filters nest AND/OR/NOT more than {MAX_DEPTH} levels deep", param="filters")
    if kind == "NOT":
        if isinstance(value, (list, tuple)):
            if not value:  # NOT of nothing has no agreed meaning (and once reached a store as "NOT ()")
                raise FilterError(f"filter {key!r} expects a filter or a non-empty list of filters", param="filters")
            return Negation(AllOf(tuple(_node(v, key, depth + 1, budget) for v in value)))
        return Negation(_node(value, key, depth + 1, budget))
    if not isinstance(value, (list, tuple)) or not value:
        raise FilterError(f"filter {key!r} expects a non-empty list of filters", param="filters")
    items = tuple(_node(v, key, depth + 1, budget) for v in value)
    return AllOf(items) if kind == "AND" else AnyOf(items)


def _node(spec: Any, where: str, depth: int, budget: _Budget) -> Filter:
    if not isinstance(spec, Mapping):
        raise FilterError(
            f"{where}: a filter must be an object, got {type(spec).__name__}", param="filters"
        )
    if not spec:
        raise FilterError(f"{where}: empty filter object", param="filters")
    items = [
        _group(key, value, depth, budget) if key in _LOGICAL else _field(key, value, budget) for key, value in spec.items()
    ]
    return items[0] if len(items) == 1 else AllOf(tuple(items))


def parse_filters(spec: Mapping[str, Any] | None) -> Filter | None:
    """Parse a filter dict; ``None`` or ``{}`` means no filter."""
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise FilterError(f"filters must be an object, got {type(spec).__name__}", param="filters")
    if not spec:
        return None
    return _node(spec, "filters", 0, _Budget())


def split_scope(
    filters: Mapping[str, Any] | None,
) -> tuple[dict[str, str], dict[str, Any] | None]:
    """Take top-level ``user_id``/``agent_id``/``run_id`` equalities out of a filter dict.

    mem0 2.x passes the scope inside ``filters``; 1.x as keywords. Both mean the same here.
    """
    if not filters:
        return {}, None
    if not isinstance(filters, Mapping):
        raise FilterError(f"filters must be an object, got {type(filters).__name__}", param="filters")
    scope: dict[str, str] = {}
    rest: dict[str, Any] = {}
    for key, value in filters.items():
        if key in SCOPE_FIELDS and isinstance(value, str):
            scope[key] = value
        elif key in SCOPE_FIELDS and isinstance(value, Mapping) and set(value) == {"eq"} and isinstance(value["eq"], str):
            scope[key] = value["eq"]
        else:
            rest[key] = value
    return scope, (rest or None)
