"""The filter parser: strict, with errors that say where."""

import pytest

from memlane import FilterError
from memlane.query.filters import AllOf, AnyOf, Condition, Negation, parse_filters, split_scope


def test_shapes() -> None:
    assert parse_filters({"category": "food"}) == Condition("category", "eq", "food")
    assert parse_filters({"p": {"gte": 3, "lt": 9}}) == AllOf((Condition("p", "gte", 3), Condition("p", "lt", 9)))
    assert parse_filters({"tags": ["a", "b"]}) == Condition("tags", "in", ("a", "b"))
    assert parse_filters({"k": "*"}) == Condition("k", "exists")
    assert parse_filters({"OR": [{"a": 1}, {"b": 2}]}) == AnyOf((Condition("a", "eq", 1), Condition("b", "eq", 2)))
    assert parse_filters({"NOT": {"a": 1}}) == Negation(Condition("a", "eq", 1))
    assert parse_filters(None) is None and parse_filters({}) is None


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"p": {"between": [1, 2]}}, "unknown filter operator 'between'"),
        ({"p": {}}, "has no operator"),
        ({"AND": {"a": 1}}, "expects a non-empty list"),
        ({"OR": []}, "expects a non-empty list"),
        ({"NOT": []}, "expects a filter or a non-empty list"),  # once reached SQLite as "NOT ()" (found by hypothesis)
        ({"AND": ["a"]}, "must be an object"),
        ({"p": {"in": "a"}}, "expects a list"),
        ({"p": {"gt": True}}, "cannot order booleans"),
        ({"p": {"gt": [1]}}, "expected a string, number or boolean"),
        ({"p": {"contains": 3}}, "expects a string"),
        ({"": 1}, "non-empty string"),
        ({"a..b": 1}, "non-empty string"),
        ({"p": {"eq": {"x": 1}}}, "expected a string"),
    ],
)
def test_malformed_filters_are_errors_never_match_all(spec: dict, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        parse_filters(spec)


def test_filters_must_be_an_object() -> None:
    with pytest.raises(FilterError):
        parse_filters(["category"])  # type: ignore[arg-type]


def test_scope_ids_come_out_of_filters() -> None:
    scope, rest = split_scope({"user_id": "alice", "agent_id": {"eq": "bot"}, "category": "food"})
    assert scope == {"user_id": "alice", "agent_id": "bot"}
    assert rest == {"category": "food"}
