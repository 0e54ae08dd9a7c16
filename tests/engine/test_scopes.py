"""Scope ids: two different scopes never share a store key, and ids that could forge one are refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memlane import Memory
from memlane.engine.memory import check_scope_id
from memlane.errors import ValidationError
from memlane.records import Scope

ids = st.one_of(st.none(), st.text(min_size=1).filter(lambda s: not any(ord(c) < 32 or ord(c) == 127 for c in s)))


@given(ids, ids, ids, ids, ids, ids)
def test_scope_keys_of_valid_ids_never_collide(u1: str | None, a1: str | None, r1: str | None,
                                               u2: str | None, a2: str | None, r2: str | None) -> None:
    one, two = Scope(u1, a1, r1), Scope(u2, a2, r2)
    assert (one.key == two.key) == (one == two)


@given(st.text(min_size=1))
def test_an_id_is_accepted_exactly_when_it_has_no_control_character(value: str) -> None:
    control = any(ord(c) < 32 or ord(c) == 127 for c in value)
    if control:
        with pytest.raises(ValidationError, match="control characters"):
            check_scope_id("user_id", value)
    else:
        assert check_scope_id("user_id", value) == value


def test_the_reported_collision_is_refused(memory: Memory) -> None:
    memory.add("Likes tea", user_id="a", agent_id="b", infer=False)
    for scope in ({"user_id": "a\x1f", "agent_id": "b"}, {"user_id": "a", "agent_id": "\x1fb"}, {"user_id": "a\n"}):
        with pytest.raises(ValidationError, match="control characters"):
            memory.add("Likes tea", infer=False, **scope)
        with pytest.raises(ValidationError, match="control characters"):
            memory.search("tea", **scope)
    with pytest.raises(ValidationError, match="record 0: user_id must not contain control characters"):
        memory.import_records([{"memory": "Likes tea", "user_id": "a\x1f", "agent_id": "b"}])
