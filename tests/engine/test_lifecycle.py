"""A memory's lifetime, on every store: ``expiration_date`` (not recalled, searched or listed after
it unless asked for; no background job, nothing deleted) and ``immutable`` (reconciliation adds
beside it instead of rewriting it; ``update`` refuses it, ``delete`` does not)."""

from __future__ import annotations

import datetime as _dt
from typing import Any, Callable

import pytest

from memlane import Memory, ValidationError
from memlane.engine.memory import SearchRequest
from memlane.testing import Reply, ScriptedUpstream


def day(offset: int) -> str:
    """Today (UTC) moved by ``offset`` days, as ``YYYY-MM-DD``."""
    return (_dt.datetime.now(_dt.timezone.utc).date() + _dt.timedelta(days=offset)).isoformat()


def texts(result: dict[str, Any]) -> set[str]:
    return {r["memory"] for r in result["results"]}


def test_an_expired_memory_is_not_searched_or_listed_unless_asked_and_get_still_returns_it(memory: Memory) -> None:
    gone = memory.add("Is in Paris for a conference", user_id="alice", infer=False, expiration_date=day(-1))["results"][0]["id"]
    memory.add("Is at the airport in Paris", user_id="alice", infer=False,
               expiration_date=(_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(minutes=1)).isoformat())
    memory.add("Has a Paris museum pass", user_id="alice", infer=False, expiration_date=day(30))
    memory.add("Loves Paris in spring", user_id="alice", infer=False)
    memory.add("Is in Paris for a conference", user_id="bob", infer=False)  # another scope, never expired

    live = {"Has a Paris museum pass", "Loves Paris in spring"}
    assert texts(memory.search("Paris", user_id="alice")) == live
    assert texts(memory.get_all(user_id="alice")) == live
    assert memory.get_page(user_id="alice", page=1, page_size=10)["count"] == 2
    everything = live | {"Is in Paris for a conference", "Is at the airport in Paris"}
    assert texts(memory.search("Paris", user_id="alice", show_expired=True)) == everything
    assert texts(memory.get_all(user_id="alice", show_expired=True)) == everything
    assert memory.get_page(user_id="alice", page=1, page_size=10, show_expired=True)["count"] == 4
    assert texts(memory.search("Paris", user_id="bob")) == {"Is in Paris for a conference"}

    record = memory.get(gone)  # by id it is still there, saying when it expired
    assert record["expiration_date"] == day(-1) and "immutable" not in record
    pass_ = next(r for r in memory.get_all(user_id="alice")["results"] if r["memory"] == "Has a Paris museum pass")
    assert pass_["expiration_date"] == day(30)
    assert "expiration_date" not in next(r for r in memory.get_all(user_id="alice")["results"] if r["memory"] == "Loves Paris in spring")

    memory.update(gone, expiration_date=None)  # clearing the date brings it back
    assert "Is in Paris for a conference" in texts(memory.search("Paris", user_id="alice"))
    assert "expiration_date" not in memory.get(gone)
    memory.update(gone, metadata={"trip": "2024"})  # an update that does not name it keeps the expiry as it is
    memory.update(gone, expiration_date=day(-3))
    memory.update(gone, "Was in Paris for a conference")
    assert memory.get(gone)["expiration_date"] == day(-3) and memory.get(gone)["metadata"] == {"trip": "2024"}
    assert "Was in Paris for a conference" not in texts(memory.get_all(user_id="alice"))


def test_a_date_counts_through_that_whole_day_in_utc(memory: Memory) -> None:
    memory.add("Has a trial plan", user_id="alice", infer=False, expiration_date=day(0))
    memory.add("Had a coupon", user_id="alice", infer=False, expiration_date=day(-1))
    memory.add("Has a gym pass", user_id="alice", infer=False, expiration_date=_dt.date.fromisoformat(day(1)))
    assert texts(memory.get_all(user_id="alice")) == {"Has a trial plan", "Has a gym pass"}


def test_expired_memories_never_take_the_places_a_search_asked_for(make_memory: Callable[..., Memory]) -> None:
    """Thirty expired memories closer to the query than any live one, and candidates cut at
    ten: the filter runs inside the store's search, before the cut, so the five live ones are
    all found (filtering the ten candidates afterwards would find none)."""
    memory = make_memory(retrieval={"candidates": 10})
    memory.add([f"Drinks green tea number {i}" for i in range(5)], user_id="alice", infer=False)
    assert len(memory.search("green tea", user_id="alice", limit=5)["results"]) == 5  # the scope's caches are warm
    memory.add([f"Drinks green tea {i} times a day" for i in range(30)], user_id="alice", infer=False, expiration_date=day(-1))
    hits = memory.search("Drinks green tea times a day", user_id="alice", limit=5)["results"]
    assert sorted(h["memory"] for h in hits) == [f"Drinks green tea number {i}" for i in range(5)]
    assert len(memory.search("Drinks green tea times a day", user_id="alice", limit=5, show_expired=True)["results"]) == 5
    page = memory.get_all(user_id="alice", limit=5)["results"]
    assert len(page) == 5 and all("expiration_date" not in r for r in page)


def test_learnt_memories_take_the_adds_expiry_and_immutability(memory: Memory, upstream: ScriptedUpstream) -> None:
    upstream.queue(Reply.json({"facts": ["Is travelling in Japan", "Is vegetarian"]}))
    added = memory.add("I'm travelling in Japan this month; I'm vegetarian.", user_id="alice", expiration_date=day(-1), immutable=True)
    assert {r["event"] for r in added["results"]} == {"ADD"}
    for result in added["results"]:
        record = memory.get(result["id"])
        assert record["expiration_date"] == day(-1) and record["immutable"] is True
    assert memory.get_all(user_id="alice")["results"] == []


def reconcile_with(answer: Callable[[dict[str, str]], list[dict[str, Any]]], facts: list[str]) -> Callable[[Any], Reply]:
    """The scripted memory LLM: these facts, then ``answer(alias by text)`` as its decisions."""

    def script(req: Any) -> Reply:
        if req.stage == "extract":
            return Reply.json({"facts": facts})
        alias = {m["text"]: m["id"] for m in req.reconcile_payload["existing_memories"]}
        return Reply.json({"memory": answer(alias)})

    return script


def test_reconciliation_adds_beside_an_immutable_memory_and_history_says_why(memory: Memory, upstream: ScriptedUpstream) -> None:
    veg = memory.add("Is vegetarian", user_id="alice", infer=False, immutable=True)["results"][0]["id"]
    city = memory.add("Lives in Paris", user_id="alice", infer=False)["results"][0]["id"]
    upstream.handler = reconcile_with(lambda a: [
        {"id": a["Is vegetarian"], "text": "Is pescatarian", "event": "UPDATE", "old_memory": "Is vegetarian"},
        {"id": a["Lives in Paris"], "text": "Lives in Lyon", "event": "UPDATE", "old_memory": "Lives in Paris"},
    ], ["Eats fish now", "Moved to Lyon"])

    result = memory.add("I eat fish now, and I moved to Lyon.", user_id="alice")

    events = {(r["event"], r["memory"]) for r in result["results"]}
    assert events == {("ADD", "Is pescatarian"), ("UPDATE", "Lives in Lyon")}
    assert memory.get(veg)["memory"] == "Is vegetarian" and memory.get(veg)["immutable"] is True
    assert [e["event"] for e in memory.history(veg)] == ["ADD"]
    assert memory.get(city)["memory"] == "Lives in Lyon", "other memories are reconciled as ever"
    beside = next(r["id"] for r in result["results"] if r["memory"] == "Is pescatarian")
    (added,) = memory.history(beside)
    assert added["event"] == "ADD" and veg in added["reason"] and "immutable" in added["reason"] and "updated" in added["reason"]
    assert "immutable" not in memory.get(beside), "the memory added beside is an ordinary one"
    assert "reason" not in memory.history(city)[1], "an ordinary event has no reason"


def test_reconciliation_never_deletes_an_immutable_memory(memory: Memory, upstream: ScriptedUpstream) -> None:
    veg = memory.add("Is vegetarian", user_id="alice", infer=False, immutable=True)["results"][0]["id"]
    upstream.handler = reconcile_with(lambda a: [
        {"id": a["Is vegetarian"], "text": "Is vegetarian", "event": "DELETE"},
        {"id": "new", "text": "Eats meat", "event": "ADD"},
    ], ["Eats meat"])
    assert [(r["event"], r["memory"]) for r in memory.add("I eat meat now.", user_id="alice")["results"]] == [("ADD", "Eats meat")]
    assert texts(memory.get_all(user_id="alice")) == {"Is vegetarian", "Eats meat"}

    upstream.handler = reconcile_with(lambda a: [{"id": a["Is vegetarian"], "text": "Is not vegetarian", "event": "DELETE"}],
                                      ["Is not vegetarian"])
    (kept,) = memory.add("I'm not vegetarian.", user_id="alice")["results"]
    assert kept["event"] == "ADD" and kept["memory"] == "Is not vegetarian" and "deleted" in memory.history(kept["id"])[0]["reason"]
    assert memory.get(veg)["memory"] == "Is vegetarian"


def test_an_expired_memory_is_not_reconciled_into(memory: Memory, upstream: ScriptedUpstream) -> None:
    """Learning sees only live memories: an UPDATE of an expired one would hide the new fact
    behind the old date."""
    memory.add("Is staying in Paris", user_id="alice", infer=False, expiration_date=day(-1))
    memory.add("Likes tea", user_id="alice", infer=False)
    shown: list[str] = []

    def script(req: Any) -> Reply:
        if req.stage == "extract":
            return Reply.json({"facts": ["Is staying in Lyon"]})
        shown.extend(m["text"] for m in req.reconcile_payload["existing_memories"])
        return Reply.json({"memory": [{"id": "new", "text": "Is staying in Lyon", "event": "ADD"}]})

    upstream.handler = script
    memory.add("I'm staying in Lyon now.", user_id="alice")
    assert shown == ["Likes tea"]
    assert texts(memory.get_all(user_id="alice")) == {"Likes tea", "Is staying in Lyon"}


def test_update_refuses_an_immutable_memory_and_delete_removes_it(memory: Memory) -> None:
    veg = memory.add("Is vegetarian", user_id="alice", infer=False, immutable=True)["results"][0]["id"]
    for change in ({"data": "Eats fish"}, {"metadata": {"a": 1}}, {"expiration_date": day(3)}):
        with pytest.raises(ValidationError, match="immutable") as refused:
            memory.update(veg, **change)
        assert refused.value.param == "memory_id" and refused.value.code == "immutable_memory"
    assert memory.get(veg)["memory"] == "Is vegetarian"
    memory.delete(veg)
    assert memory.get_all(user_id="alice")["results"] == []
    assert [e["event"] for e in memory.history(veg)] == ["ADD", "DELETE"]


def test_the_lifetime_travels_through_export_and_import(make_memory: Callable[..., Memory], tmp_path: Any,
                                                        upstream: ScriptedUpstream) -> None:
    source = make_memory(tmp_path / "a.db")
    source.add("Had a coupon", user_id="alice", infer=False, expiration_date=day(-1))
    source.add("Is vegetarian", user_id="alice", infer=False, immutable=True)
    upstream.handler = reconcile_with(lambda a: [{"id": a["Is vegetarian"], "text": "Is pescatarian", "event": "UPDATE"}], ["Eats fish"])
    source.add("I eat fish", user_id="alice")
    exported = list(source.export(user_id="alice"))
    assert sorted((r["memory"], r.get("expiration_date"), r.get("immutable", False)) for r in exported) == [
        ("Had a coupon", day(-1), False), ("Is pescatarian", None, False), ("Is vegetarian", None, True)]

    target = make_memory(tmp_path / "b.db")
    assert target.import_records(exported) == {"imported": 3, "skipped": 0}
    assert texts(target.get_all(user_id="alice")) == {"Is vegetarian", "Is pescatarian"}
    assert target.get(next(r["id"] for r in exported if r["memory"] == "Is vegetarian"))["immutable"] is True
    beside = next(r["id"] for r in exported if r["memory"] == "Is pescatarian")
    assert "immutable" in target.history(beside)[0]["reason"], "history keeps its reasons"
    with pytest.raises(ValidationError, match="record 0: expiration_date"):
        target.import_records([{"memory": "x", "user_id": "alice", "expiration_date": "next week"}])


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("call, param", [
    (lambda m: m.add("x", user_id="a", infer=False, expiration_date="next week"), "expiration_date"),
    (lambda m: m.add("x", user_id="a", infer=False, expiration_date=20300101), "expiration_date"),
    (lambda m: m.add("x", user_id="a", infer=False, immutable="yes"), "immutable"),
    (lambda m: m.search("x", user_id="a", show_expired="yes"), "show_expired"),
    (lambda m: m.get_all(user_id="a", show_expired=1), "show_expired"),
    (lambda m: m.search("x", user_id="a", latest_only="yes"), "latest_only"),
    (lambda m: m.search("x", user_id="a", keyword_search="no"), "keyword_search"),
    (lambda m: m.search("x", user_id="a", fields=["memory", "colour"]), "fields"),
    (lambda m: m.search("x", user_id="a", fields="memory"), "fields"),
    (lambda m: m.search("x", user_id="a", categories="food"), "categories"),
    (lambda m: m.get_all(user_id="a", categories=[""]), "categories"),
    (lambda m: m.search("x", user_id="a", reference_date="last tuesday"), "reference_date"),
])
def test_bad_lifetime_and_search_options_are_errors_naming_them(memory: Memory, call: Callable[[Memory], Any], param: str) -> None:
    with pytest.raises(ValidationError) as refused:
        call(memory)
    assert refused.value.param == param


def test_categories_fields_and_latest_only(memory: Memory) -> None:
    memory.add([{"role": "user", "content": "Loves ramen", "metadata": {"categories": ["food", "japan"]}},
                {"role": "user", "content": "Flies to Tokyo in May", "metadata": {"categories": ["travel", "japan"]}},
                {"role": "user", "content": "Plays chess"}], user_id="alice", infer=False)
    assert texts(memory.search("Japan", user_id="alice", categories=["food"])) == {"Loves ramen"}
    assert texts(memory.search("Japan", user_id="alice", categories=["travel", "food"])) == {"Loves ramen", "Flies to Tokyo in May"}
    assert texts(memory.get_all(user_id="alice", categories=["japan"])) == {"Loves ramen", "Flies to Tokyo in May"}
    assert memory.get_page(user_id="alice", page=1, page_size=5, categories=["travel"])["count"] == 1

    hits = memory.search("ramen", user_id="alice", fields=["memory", "score", "immutable"], latest_only=True)["results"]
    assert [list(h) for h in hits] == [["memory", "score", "immutable"]] * 3 and hits[0]["memory"] == "Loves ramen"
    assert all(h["immutable"] is False for h in hits)


def test_keyword_search_false_ranks_by_the_dense_signal_alone(memory: Memory) -> None:
    memory.add(["Drinks oolong every morning", "Likes hiking in the Alps"], user_id="alice", infer=False)
    hybrid = memory.search_hits(SearchRequest("oolong", user_id="alice"))
    dense = memory.search_hits(SearchRequest("oolong", user_id="alice", keyword_search=False))
    assert any(h.keyword is not None for h in hybrid)
    assert dense and all(h.keyword is None for h in dense)


def test_reference_date_is_what_relative_dates_count_back_from(make_memory: Callable[..., Memory]) -> None:
    memory = make_memory(retrieval={"time_bonus": 1.0})
    memory.add("Went hiking in the Alps", user_id="alice", infer=False, timestamp="2023-05-10T10:00:00Z")
    memory.add("Went to a jazz concert", user_id="alice", infer=False, timestamp="2024-01-15T20:00:00Z")
    query = "What did I do last month?"  # without a reference date: the month before the latest memory's, December 2023
    assert memory.search(query, user_id="alice", limit=1, reference_date="2024-02-10")["results"][0]["memory"] == "Went to a jazz concert"
    assert memory.search(query, user_id="alice", limit=1, reference_date="2023-06-15")["results"][0]["memory"] == "Went hiking in the Alps"
    june = int(_dt.datetime(2023, 6, 15, tzinfo=_dt.timezone.utc).timestamp())  # Unix seconds, as mem0 may send it
    assert memory.search(query, user_id="alice", limit=1, reference_date=june)["results"][0]["memory"] == "Went hiking in the Alps"


def test_delete_users_deletes_one_users_memories_or_everyones(memory: Memory) -> None:
    memory.add("Likes tea", user_id="alice", infer=False)
    memory.add("Likes jazz", user_id="alice", agent_id="concierge", infer=False)
    memory.add("Likes chess", user_id="bob", infer=False)
    memory.add("Is a concierge", agent_id="concierge", infer=False)
    assert memory.delete_users(user_id="alice") == {"message": "Entity deleted successfully.", "deleted": 2}
    assert {(t, n) for t, n, _ in memory.entities()} == {("user", "bob"), ("agent", "concierge")}
    assert memory.delete_users() == {"message": "All users, agents, apps and runs deleted.", "deleted": 2}
    assert memory.entities() == [] and memory.status()["memories"] == 0
