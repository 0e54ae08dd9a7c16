"""Every filter operator and combination, compiled to SQL and run against a real store (every
backend), applied before the top-k cut."""

from __future__ import annotations

from typing import Any

import pytest

from memlane import FilterError, Memory

ROWS: list[tuple[str, dict[str, Any]]] = [
    ("cheese allergy", {"category": "health", "priority": 5, "tags": ["food", "medical"], "note": "Severe"}),
    ("indian food", {"category": "food", "priority": 3, "tags": ["food"], "verified": True}),
    ("san francisco", {"category": "place", "priority": 1, "nested": {"city": "SF"}}),
    ("window seat", {"category": "travel", "priority": 2.5, "note": "prefers aisle too"}),
    ("no metadata", {}),
]


@pytest.fixture
def filled(memory: Memory) -> Memory:
    for text, meta in ROWS:
        memory.add(text, user_id="alice", infer=False, metadata=meta)
    memory.add("bob food", user_id="bob", infer=False, metadata={"category": "food", "priority": 9})
    return memory


def matches(memory: Memory, filters: dict[str, Any]) -> set[str]:
    listed = {r["memory"] for r in memory.get_all(user_id="alice", filters=filters)["results"]}
    searched = {r["memory"] for r in memory.search("anything at all", user_id="alice", filters=filters, limit=50)["results"]}
    assert listed == searched, "search and get_all must apply the same filter"
    return listed


@pytest.mark.parametrize(
    "filters,expected",
    [
        ({"category": "food"}, {"indian food"}),
        ({"category": {"eq": "food"}}, {"indian food"}),
        ({"category": {"ne": "food"}}, {"cheese allergy", "san francisco", "window seat", "no metadata"}),
        ({"priority": {"gt": 3}}, {"cheese allergy"}),
        ({"priority": {"gte": 3}}, {"cheese allergy", "indian food"}),
        ({"priority": {"lt": 2.5}}, {"san francisco"}),
        ({"priority": {"lte": 2.5}}, {"san francisco", "window seat"}),
        ({"priority": {"gte": 2, "lt": 5}}, {"indian food", "window seat"}),
        ({"category": {"in": ["food", "place"]}}, {"indian food", "san francisco"}),
        ({"category": ["food", "place"]}, {"indian food", "san francisco"}),
        ({"category": {"nin": ["food", "place"]}}, {"cheese allergy", "window seat", "no metadata"}),
        ({"note": {"contains": "aisle"}}, {"window seat"}),
        ({"note": {"contains": "severe"}}, set()),
        ({"note": {"icontains": "severe"}}, {"cheese allergy"}),
        ({"tags": {"contains": "food"}}, {"cheese allergy", "indian food"}),
        ({"tags": {"icontains": "MEDICAL"}}, {"cheese allergy"}),
        ({"verified": True}, {"indian food"}),
        ({"nested.city": "SF"}, {"san francisco"}),
        ({"note": "*"}, {"cheese allergy", "window seat"}),
        ({"category": {"in": []}}, set()),
        ({"AND": [{"category": {"in": ["food", "health"]}}, {"priority": {"gte": 4}}]}, {"cheese allergy"}),
        ({"OR": [{"category": "place"}, {"priority": {"gt": 4}}]}, {"san francisco", "cheese allergy"}),
        ({"NOT": {"category": "food"}}, {"cheese allergy", "san francisco", "window seat", "no metadata"}),
        ({"NOT": {"priority": {"gt": 1}}}, {"san francisco", "no metadata"}),
        ({"OR": [{"AND": [{"category": "food"}, {"verified": True}]}, {"NOT": {"category": "*"}}]}, {"indian food", "no metadata"}),
        ({"category": "food", "priority": {"lt": 1}}, set()),
        ({"memory": {"icontains": "FRAN"}}, {"san francisco"}),
        # a list field equals no scalar (Qdrant's own "any element" match must not leak through)
        ({"tags": "food"}, set()),
        ({"tags": {"in": ["food", "x"]}}, set()),
        ({"tags": {"ne": "food"}}, {r for r, _ in ROWS}),
        ({"NOT": {"tags": {"nin": ["food"]}}}, set()),
    ],
)
def test_operator(filled: Memory, filters: dict[str, Any], expected: set[str]) -> None:
    assert matches(filled, filters) == expected


def test_order_comparisons_never_mix_types(memory: Memory) -> None:
    memory.add("text priority", user_id="alice", infer=False, metadata={"priority": "9"})
    memory.add("number priority", user_id="alice", infer=False, metadata={"priority": 1})
    assert matches(memory, {"priority": {"gt": 0}}) == {"number priority"}
    assert matches(memory, {"priority": {"gt": "0"}}) == {"text priority"}


def test_record_fields_are_filterable(filled: Memory) -> None:
    first = filled.get_all(user_id="alice")["results"][-1]
    assert matches(filled, {"created_at": {"lte": first["created_at"]}}) == {"cheese allergy"}
    assert matches(filled, {"created_at": {"gt": first["created_at"]}}) == {r for r, _ in ROWS} - {"cheese allergy"}
    assert matches(filled, {"agent_id": None}) == {r for r, _ in ROWS}


def test_filters_apply_before_the_top_k_cut(memory: Memory) -> None:
    for i in range(30):
        memory.add(f"I love pizza number {i}", user_id="alice", infer=False, metadata={"kind": "pizza"})
    memory.add("Tea is nice", user_id="alice", infer=False, metadata={"kind": "drink"})
    hits = memory.search("pizza", user_id="alice", filters={"kind": "drink"}, limit=1)["results"]
    assert [h["memory"] for h in hits] == ["Tea is nice"]


def test_changed_metadata_is_what_filters_see(memory: Memory) -> None:
    added = memory.add("Likes green tea", user_id="alice", infer=False, metadata={"kind": "drink"})["results"][0]
    memory.update(added["id"], "Likes green tea", metadata={"kind": "food", "rank": 2})
    assert matches(memory, {"kind": "food"}) == {"Likes green tea"}
    assert matches(memory, {"rank": {"gte": 2}}) == {"Likes green tea"}
    assert matches(memory, {"kind": "drink"}) == set()


def test_user_values_are_parameters_not_sql(filled: Memory) -> None:
    evil = "food' OR 1=1 --"
    assert matches(filled, {"category": evil}) == set()
    assert matches(filled, {"cat\"egory": "x"}) == set()


def test_malformed_filter_through_the_engine(filled: Memory) -> None:
    with pytest.raises(FilterError, match="unknown filter operator 'like'"):
        filled.search("x", user_id="alice", filters={"category": {"like": "f%"}})
