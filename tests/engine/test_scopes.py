"""Scope ids: two different scopes never share a store key, and ids that could forge one are refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memlane import Memory
from memlane.engine.validation import MAX_SCOPE_ID_CHARS, check_scope_id
from memlane.errors import ScopeError, ValidationError
from memlane.records import Scope


def refused_character(c: str) -> bool:
    """C0 and C1 controls, DEL, line/paragraph separators, lone surrogates."""
    return ord(c) < 32 or 127 <= ord(c) <= 159 or c in "\u2028\u2029" or 0xD800 <= ord(c) <= 0xDFFF


ids = st.one_of(st.none(), st.text(min_size=1, max_size=40).filter(lambda s: s.strip() and not any(refused_character(c) for c in s)))


@given(ids, ids, ids, ids, ids, ids)
def test_scope_keys_of_valid_ids_never_collide(u1: str | None, a1: str | None, r1: str | None,
                                               u2: str | None, a2: str | None, r2: str | None) -> None:
    one, two = Scope(u1, a1, r1), Scope(u2, a2, r2)
    assert (one.key == two.key) == (one == two)


@given(st.text(min_size=1, max_size=300))
def test_an_id_is_accepted_exactly_when_it_is_short_not_blank_and_has_no_refused_character(value: str) -> None:
    if not value.strip():
        with pytest.raises(ScopeError, match="blank"):
            check_scope_id("user_id", value)
    elif len(value) > MAX_SCOPE_ID_CHARS:
        with pytest.raises(ValidationError, match=f"at most {MAX_SCOPE_ID_CHARS}"):
            check_scope_id("user_id", value)
    elif any(refused_character(c) for c in value):
        with pytest.raises(ValidationError, match="control characters"):
            check_scope_id("user_id", value)
    else:
        assert check_scope_id("user_id", value) == value


def test_no_scope_can_hold_the_key_separator_whoever_builds_it() -> None:
    with pytest.raises(ValidationError, match="x1f"):
        Scope("a", "\x1fb")


def test_the_reported_collision_is_refused(memory: Memory) -> None:
    memory.add("Likes tea", user_id="a", agent_id="b", infer=False)
    for scope in ({"user_id": "a\x1f", "agent_id": "b"}, {"user_id": "a", "agent_id": "\x1fb"}, {"user_id": "a\n"}):
        with pytest.raises(ValidationError, match="control characters"):
            memory.add("Likes tea", infer=False, **scope)
        with pytest.raises(ValidationError, match="control characters"):
            memory.search("tea", **scope)
    with pytest.raises(ValidationError, match="record 0: user_id must not contain control characters"):
        memory.import_records([{"memory": "Likes tea", "user_id": "a\x1f", "agent_id": "b"}])


@pytest.mark.parametrize("bad, why", [("   ", "blank"), ("u" * 1_000_000, "at most 256"), ("a\u2028b", "line separators"),
                                      ("a\x85b", "control characters"), ("\ud800", "lone surrogates")])
def test_every_way_in_refuses_the_same_bad_ids(memory: Memory, bad: str, why: str) -> None:
    calls = {
        "add": lambda: memory.add("Likes tea", user_id=bad, infer=False),
        "add, scope in filters": lambda: memory.add("Likes tea", filters={"user_id": bad}, infer=False),
        "search": lambda: memory.search("tea", user_id=bad),
        "get_all": lambda: memory.get_all(user_id=bad),
        "get_page": lambda: memory.get_page(user_id=bad, page=1, page_size=10),
        "delete_all": lambda: memory.delete_all(user_id=bad),
        "import": lambda: memory.import_records([{"memory": "Likes tea", "user_id": bad}]),
        "exchange": lambda: memory.enqueue({"scope": {"user_id": bad}, "messages": [{"role": "user", "content": "hi"}]}),
    }
    for name, call in calls.items():
        with pytest.raises(ValidationError, match=why):
            call()
    assert memory.outbox_status()["pending"] == 0 and memory.entities() == []
