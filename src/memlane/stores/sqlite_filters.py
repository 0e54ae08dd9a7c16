"""Compile the filter AST to a parameterised SQLite WHERE clause (never string-built from input)."""

from __future__ import annotations

import json
from typing import Any

from memlane.query.filters import AllOf, AnyOf, Condition, Filter, Negation, Unexpired

_COLUMNS = {
    "user_id": "m.user_id",
    "agent_id": "m.agent_id",
    "run_id": "m.run_id",
    "created_at": "m.created_at",
    "updated_at": "m.updated_at",
    "id": "m.id",
    "memory": "m.memory",
}
_ORDER = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def json_path(path: tuple[str, ...]) -> str:
    return "$" + "".join("." + json.dumps(part) for part in path)


def _condition(c: Condition) -> tuple[str, list[Any]]:
    # ``eparams``: what one occurrence of ``expr`` (or of its type/array test) needs bound
    if c.is_record_field:
        expr, eparams = _COLUMNS[c.field], []
        type_expr, is_array = f"typeof({expr})", "0"
    else:
        expr, eparams = "json_extract(m.metadata, ?)", [json_path(c.path)]
        type_expr, is_array = "typeof(json_extract(m.metadata, ?))", "json_type(m.metadata, ?) = 'array'"
    op, v = c.op, c.value
    if op == "exists":
        if c.is_record_field:
            return f"{expr} IS NOT NULL", []
        return "json_type(m.metadata, ?) IS NOT NULL", eparams
    if op == "eq":
        if v is None:
            return f"{expr} IS NULL", eparams
        return f"{expr} = ?", [*eparams, v]
    if op == "ne":
        if v is None:
            return f"{expr} IS NOT NULL", eparams
        return f"({expr} IS NULL OR {expr} != ?)", [*eparams, *eparams, v]
    if op in _ORDER:
        kind = "'text'" if isinstance(v, str) else "'integer', 'real'"
        return f"({type_expr} IN ({kind}) AND {expr} {_ORDER[op]} ?)", [*eparams, *eparams, v]
    if op in ("in", "nin"):
        values = list(v)
        if not values:
            return ("0", []) if op == "in" else ("1", [])
        marks = ", ".join("?" for _ in values)
        if op == "in":
            return f"{expr} IN ({marks})", [*eparams, *values]
        return f"({expr} IS NULL OR {expr} NOT IN ({marks}))", [*eparams, *eparams, *values]
    # contains / icontains: substring of a string, or element of a list field
    low = op == "icontains"
    hay = f"lower({expr})" if low else expr
    needle = str(v).lower() if low else v
    text_sql = f"({type_expr} = 'text' AND instr({hay}, ?) > 0)"
    text_params = [*eparams, *eparams, needle]
    if c.is_record_field:
        return text_sql, text_params
    elem = "lower(value) = ?" if low else "value = ?"
    sql = f"(CASE WHEN {is_array} THEN EXISTS(SELECT 1 FROM json_each(m.metadata, ?) WHERE {elem}) ELSE {text_sql} END)"
    return sql, [*eparams, *eparams, needle, *text_params]


def compile_filter(node: Filter) -> tuple[str, list[Any]]:
    """Return ``(sql, params)``; every condition is two-valued so that NOT never drops NULL rows."""
    if isinstance(node, Condition):
        sql, params = _condition(node)
        return f"COALESCE(({sql}), 0)", params
    if isinstance(node, Negation):
        sql, params = compile_filter(node.item)
        return f"NOT ({sql})", params
    if isinstance(node, Unexpired):
        return "(m.expires_at IS NULL OR m.expires_at > ?)", [node.now]
    parts = [compile_filter(item) for item in node.items]
    joiner = " AND " if isinstance(node, AllOf) else " OR "
    assert isinstance(node, (AllOf, AnyOf))
    return "(" + joiner.join(p[0] for p in parts) + ")", [x for p in parts for x in p[1]]
