"""How filters reach Qdrant: natively where Qdrant means the same (so they narrow its HNSW
search), as the exact id set from SQL where it does not (substring, negations)."""

from __future__ import annotations

from typing import Any

from qdrant_client import models

from memlane.query.filters import parse_filters
from memlane.stores.qdrant_filters import compile_filter


def compiled(spec: dict[str, Any]) -> tuple[models.Filter, list[str]]:
    asked: list[str] = []

    def sql_ids(condition: Any) -> list[str]:
        asked.append(f"{condition.field} {condition.op}")
        return ["m1"]

    tree = parse_filters(spec)
    assert tree is not None
    return compile_filter(tree, models, sql_ids, lambda memory_id: f"p-{memory_id}"), asked


def test_equality_membership_and_ranges_are_native() -> None:
    flt, asked = compiled({"AND": [{"category": "food"}, {"priority": {"gte": 2, "lt": 9.5}}, {"tag": {"in": ["a", "b"]}}, {"user_id": "alice"}]})
    assert asked == []
    dumped = flt.model_dump_json(exclude_none=True)
    for expected in ('"key":"metadata.category"', '"value":"food"', '"gte":2', '"lt":9.5', '"any":["a","b"]', '"key":"user_id"'):
        assert expected in dumped


def test_substring_and_negations_take_the_exact_sql_ids() -> None:
    flt, asked = compiled({"OR": [{"note": {"contains": "aisle"}}, {"category": {"ne": "food"}}, {"NOT": {"priority": {"gt": 1}}}]})
    assert asked == ["note contains", "category eq", "priority gt"]
    first, second, third = flt.should
    assert first.must[0].has_id == ["p-m1"]
    assert second.must_not[0].must[0].has_id == ["p-m1"]
    assert third.must_not[0].must[0].has_id == ["p-m1"]


def test_keys_qdrant_would_misread_go_through_sql() -> None:
    _, asked = compiled({"odd[key]": "x", "none": None, "ratio": 0.5})
    assert asked == ["odd[key] eq", "none eq", "ratio eq"]


def test_expiry_leaves_out_exactly_the_expired_ids_sql_lists() -> None:
    from memlane.query.filters import AllOf, Negation, Unexpired

    asked: list[Any] = []

    def sql_ids(condition: Any) -> list[str]:
        asked.append(condition)
        return ["gone"]

    tree = AllOf((parse_filters({"category": "food"}), Unexpired("2030-01-01T00:00:00.000000+00:00")))  # type: ignore[arg-type]
    flt = compile_filter(tree, models, sql_ids, lambda memory_id: f"p-{memory_id}")
    assert asked == [Negation(Unexpired("2030-01-01T00:00:00.000000+00:00"))], "SQL is asked for the expired ones"
    native, expiry = flt.must
    assert expiry.must_not[0].has_id == ["p-gone"] and "metadata.category" in native.model_dump_json()
