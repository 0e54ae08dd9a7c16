"""Compile the filter AST to a parameterised PostgreSQL WHERE clause over ``jsonb`` metadata,
with the same meaning as the SQLite compiler (a missing field fails eq/in/order and passes
ne/nin; order compares numbers with numbers and strings with strings, in byte order)."""

from __future__ import annotations

import json
from typing import Any

from memlane.query.filters import AllOf, AnyOf, Condition, Filter, Negation, Unexpired

_COLUMNS = {
    "user_id": "m.user_id", "agent_id": "m.agent_id", "run_id": "m.run_id", "created_at": "m.created_at",
    "updated_at": "m.updated_at", "id": "m.id", "memory": "m.memory",
}
_ORDER = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _record(c: Condition) -> tuple[str, list[Any]]:
    col = _COLUMNS[c.field]
    op, v = c.op, c.value
    if op == "exists":
        return f"{col} IS NOT NULL", []
    if op == "eq":
        return (f"{col} IS NULL", []) if v is None else (f"{col} = %s", [str(v) if not isinstance(v, str) else v])
    if op == "ne":
        return (f"{col} IS NOT NULL", []) if v is None else (f"({col} IS NULL OR {col} <> %s)", [str(v)])
    if op in _ORDER:
        if not isinstance(v, str):
            return "FALSE", []
        return f'{col} COLLATE "C" {_ORDER[op]} %s', [v]
    if op in ("in", "nin"):
        values = [str(x) for x in v]
        if not values:
            return ("FALSE", []) if op == "in" else ("TRUE", [])
        if op == "in":
            return f"{col} = ANY(%s)", [values]
        return f"({col} IS NULL OR NOT ({col} = ANY(%s)))", [values]
    if op == "contains":
        return f"strpos({col}, %s) > 0", [v]
    return f"strpos(lower({col}), %s) > 0", [str(v).lower()]


def _metadata(c: Condition) -> tuple[str, list[Any]]:
    path = list(c.path)
    x = "(m.metadata #> %s)"
    text = "(m.metadata #>> %s)"
    op, v = c.op, c.value
    if op == "exists":
        return f"{x} IS NOT NULL", [path]
    if op == "eq":
        if v is None:
            return f"({x} IS NULL OR {x} = 'null'::jsonb)", [path, path]
        return f"{x} = %s::jsonb", [path, json.dumps(v)]
    if op == "ne":
        if v is None:
            return f"({x} IS NOT NULL AND {x} <> 'null'::jsonb)", [path, path]
        return f"({x} IS NULL OR {x} <> %s::jsonb)", [path, path, json.dumps(v)]
    if op in _ORDER:
        if isinstance(v, str):
            return f"(jsonb_typeof({x}) = 'string' AND {text} COLLATE \"C\" {_ORDER[op]} %s)", [path, path, v]
        return f"(jsonb_typeof({x}) = 'number' AND ({text})::numeric {_ORDER[op]} %s)", [path, path, v]
    if op in ("in", "nin"):
        values = [json.dumps(item) for item in v]
        if not values:
            return ("FALSE", []) if op == "in" else ("TRUE", [])
        if op == "in":
            return f"{x} = ANY(%s::jsonb[])", [path, values]
        return f"({x} IS NULL OR NOT ({x} = ANY(%s::jsonb[])))", [path, path, values]
    if op == "contains":
        return (f"(CASE WHEN jsonb_typeof({x}) = 'array' THEN {x} @> %s::jsonb"
                f" WHEN jsonb_typeof({x}) = 'string' THEN strpos({text}, %s) > 0 ELSE FALSE END)",
                [path, path, json.dumps([v]), path, path, v])
    needle = str(v).lower()
    return (f"(CASE WHEN jsonb_typeof({x}) = 'array' THEN EXISTS (SELECT 1 FROM jsonb_array_elements({x}) e"
            f" WHERE jsonb_typeof(e) = 'string' AND lower(e #>> '{{}}') = %s)"
            f" WHEN jsonb_typeof({x}) = 'string' THEN strpos(lower({text}), %s) > 0 ELSE FALSE END)",
            [path, path, needle, path, path, needle])


def compile_filter(node: Filter) -> tuple[str, list[Any]]:
    """Return ``(sql, params)`` with ``%s`` placeholders; every condition is two-valued."""
    if isinstance(node, Condition):
        sql, params = _record(node) if node.is_record_field else _metadata(node)
        return f"COALESCE(({sql}), FALSE)", params
    if isinstance(node, Negation):
        sql, params = compile_filter(node.item)
        return f"NOT ({sql})", params
    if isinstance(node, Unexpired):  # byte order, as the partial indexes on expires_at keep it
        return '(m.expires_at IS NULL OR m.expires_at COLLATE "C" > %s)', [node.now]
    assert isinstance(node, (AllOf, AnyOf))
    parts = [compile_filter(item) for item in node.items]
    joiner = " AND " if isinstance(node, AllOf) else " OR "
    return "(" + joiner.join(p[0] for p in parts) + ")", [x for p in parts for x in p[1]]
