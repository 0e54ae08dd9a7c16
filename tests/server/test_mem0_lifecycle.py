"""mem0ai's own MemoryClient, unchanged, against ``memlane serve`` for the memory lifecycle:
``expiration_date`` and ``immutable`` on add, ``show_expired``, mem0's other search options,
``update(expiration_date=...)``, ``create_memory_export`` / ``get_memory_export`` and
``delete_users``. And a chat through the server recalls no expired memory."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Callable

import httpx
import openai
import pytest

from memlane.server.keys import KeyStore
from memlane.testing import Reply, ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import restaurant_llm

ALICE = {"user_id": "alice"}


def day(offset: int) -> str:
    return (_dt.datetime.now(_dt.timezone.utc).date() + _dt.timedelta(days=offset)).isoformat()


def texts(found: dict[str, Any]) -> set[str]:
    return {r["memory"] for r in found["results"]}


@pytest.fixture
def served(make_server: Callable[..., LiveServer], tmp_path: Path, upstream: ScriptedUpstream) -> tuple[Any, LiveServer, str]:
    from mem0 import MemoryClient

    upstream.handler = restaurant_llm
    keys = KeyStore(tmp_path / "keys.db")
    key, _ = keys.create("acme")
    server = make_server(keys=keys)
    return MemoryClient(api_key=key, host=server.url), server, key


@pytest.fixture
def client(served: tuple[Any, LiveServer, str]) -> Any:
    return served[0]


def test_expiration_date_on_add_hides_a_memory_from_search_and_get_all_unless_show_expired(client: Any) -> None:
    gone = client.add("Has a trial plan", user_id="alice", infer=False, expiration_date=day(-1))["results"][0]["id"]
    client.add("Has a museum pass", user_id="alice", infer=False, expiration_date=day(10))
    client.add("Loves Indian food", user_id="alice", infer=False)

    assert texts(client.search("what plan or pass do I have?", filters=ALICE)) == {"Has a museum pass", "Loves Indian food"}
    assert texts(client.search("what plan or pass do I have?", filters=ALICE, show_expired=True)) == {
        "Has a trial plan", "Has a museum pass", "Loves Indian food"}
    listed = client.get_all(filters=ALICE)
    assert listed["count"] == 2 and texts(listed) == {"Has a museum pass", "Loves Indian food"}
    assert client.get_all(filters=ALICE, show_expired=True)["count"] == 3
    assert client.get(gone)["expiration_date"] == day(-1), "get by id still returns it"

    client.update(gone, expiration_date=None)  # mem0's way to clear it: the memory is back
    assert "Has a trial plan" in texts(client.get_all(filters=ALICE))
    client.update(gone, expiration_date=day(-2))
    assert client.get(gone)["expiration_date"] == day(-2) and "Has a trial plan" not in texts(client.get_all(filters=ALICE))


def test_learnt_memories_take_expiry_and_immutable_and_an_immutable_one_refuses_update(client: Any) -> None:
    added = client.add([{"role": "user", "content": "I love Indian food but I'm allergic to cheese."}], user_id="alice",
                       immutable=True, expiration_date=day(5))
    assert texts(added) == {"Is allergic to cheese", "Loves Indian food"}
    allergy = next(r["id"] for r in added["results"] if r["memory"] == "Is allergic to cheese")
    record = client.get(allergy)
    assert record["immutable"] is True and record["expiration_date"] == day(5)
    with pytest.raises(Exception, match="immutable"):
        client.update(allergy, text="Is no longer allergic to cheese")
    assert client.get(allergy)["memory"] == "Is allergic to cheese"
    client.delete(allergy)  # as mem0's Platform: delete it, then add the new text
    assert texts(client.get_all(filters=ALICE)) == {"Loves Indian food"}


def test_mem0s_search_options(client: Any) -> None:
    client.add([{"role": "user", "content": "Loves ramen", "metadata": {"categories": ["food"]}},
                {"role": "user", "content": "Flies to Tokyo in May", "metadata": {"categories": ["travel"]}}],
               user_id="alice", infer=False)
    client.add("Went hiking in the Alps", user_id="alice", infer=False, timestamp=1683712800)  # 2023-05-10

    assert texts(client.search("Japan trip and food", filters=ALICE, categories=["travel"])) == {"Flies to Tokyo in May"}
    assert texts(client.get_all(filters=ALICE, categories=["food"])) == {"Loves ramen"}
    hits = client.search("ramen", filters=ALICE, fields=["id", "memory"], latest_only=True, keyword_search=True)["results"]
    assert hits and all(list(h) == ["id", "memory"] for h in hits) and hits[0]["memory"] == "Loves ramen"
    dense = client.search("ramen", filters=ALICE, keyword_search=False)["results"]
    assert dense[0]["memory"] == "Loves ramen"
    every = client.search("ramen", filters=ALICE)["results"]
    cut = (every[0]["score"] + every[-1]["score"]) / 2
    assert [h["memory"] for h in client.search("ramen", filters=ALICE, threshold=cut)["results"]] == [
        h["memory"] for h in every if h["score"] >= cut]
    # "last month" from June 2023 is May 2023: the hike; from now, nothing of alice's (mem0 sends YYYY-MM-DD)
    found = client.search("what did I do last month?", filters=ALICE, reference_date="2023-06-15", top_k=3)["results"]
    assert found[0]["memory"] == "Went hiking in the Alps"
    with pytest.raises(Exception, match="fields"):
        client.search("ramen", filters=ALICE, fields=["colour"])


def test_memory_exports_are_the_memories_with_their_history(client: Any) -> None:
    kept = client.add("Loves Indian food", user_id="alice", infer=False)["results"][0]["id"]
    client.add("Had a coupon", user_id="alice", infer=False, expiration_date=day(-1))
    client.add("Likes chess", user_id="bob", infer=False)
    client.update(kept, text="Loves South Indian food")

    created = client.create_memory_export(schema='{"title": "Profile", "type": "object"}', filters=ALICE)
    assert created["id"] and created["message"]
    export = client.get_memory_export(memory_export_id=created["id"])
    assert export["id"] == created["id"] and export["status"] == "completed" and export["count"] == 2
    by_text = {r["memory"]: r for r in export["results"]}
    assert set(by_text) == {"Loves South Indian food", "Had a coupon"}, "an export holds expired memories too: it is a copy"
    assert [e["event"] for e in by_text["Loves South Indian food"]["history"]] == ["ADD", "UPDATE"]
    assert by_text["Had a coupon"]["expiration_date"] == day(-1)
    assert client.get_memory_export(filters={"user_id": "bob"})["results"][0]["memory"] == "Likes chess"
    with pytest.raises(Exception, match="no memory export"):
        client.get_memory_export(memory_export_id="memexp_not-one")


def test_delete_users_one_or_all(client: Any) -> None:
    client.add("Likes tea", user_id="alice", infer=False)
    client.add("Likes jazz", user_id="alice", agent_id="concierge", infer=False)
    client.add("Likes chess", user_id="bob", infer=False)
    client.add("Is a concierge", agent_id="concierge", infer=False)
    assert client.delete_users(user_id="alice") == {"message": "Entity deleted successfully."}
    assert {(u["type"], u["name"]) for u in client.users()["results"]} == {("user", "bob"), ("agent", "concierge")}
    assert client.delete_users() == {"message": "All users, agents, apps and runs deleted."}
    assert client.users()["results"] == []


def test_the_rest_api_says_the_same(served: tuple[Any, LiveServer, str]) -> None:
    _, server, key = served
    api = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"})
    added = api.post("/v1/memories", json={"messages": "Has a trial plan", "user_id": "zoe", "infer": False, "expiration_date": day(-1),
                                           "immutable": True}).json()["results"][0]["id"]
    api.post("/v1/memories", json={"messages": "Likes tea", "user_id": "zoe", "infer": False})
    assert [r["memory"] for r in api.get("/v1/memories", params={"user_id": "zoe"}).json()["results"]] == ["Likes tea"]
    assert len(api.get("/v1/memories", params={"user_id": "zoe", "show_expired": "true"}).json()["results"]) == 2
    hits = api.post("/v1/memories/search", json={"query": "plan", "user_id": "zoe", "show_expired": True, "fields": ["memory", "immutable"]})
    assert {"memory": "Has a trial plan", "immutable": True} in hits.json()["results"]
    refused = api.put(f"/v1/memories/{added}", json={"text": "Has a paid plan"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "immutable_memory"
    bad = api.post("/v1/memories", json={"messages": "x", "user_id": "zoe", "infer": False, "expiration_date": "soon"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "expiration_date"
    assert api.delete("/v1/users", params={"user_id": "zoe"}).json() == {"message": "Entity deleted successfully.", "deleted": 2}


def test_a_chat_through_the_server_recalls_no_expired_memory(served: tuple[Any, LiveServer, str], upstream: ScriptedUpstream) -> None:
    client, server, key = served
    client.add("Is allergic to cheese", user_id="alice", infer=False)
    client.add("Is staying at the Hotel Nikko", user_id="alice", infer=False, expiration_date=day(-1))
    upstream.handler = lambda req: Reply.json({"facts": []}) if req.stage == "extract" else Reply.text("Try the dosa place.")
    sdk = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    answer = sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "Suggest dinner near my hotel."}],
                                         extra_body={"user_id": "alice", "include_memories": True})
    recalled = [m["memory"] for m in answer.metadata["memories"]]  # type: ignore[attr-defined]
    assert recalled == ["Is allergic to cheese"]
    (sent,) = upstream.chat_requests("chat")
    assert "Hotel Nikko" not in str(sent.json["messages"]) and "allergic to cheese" in str(sent.json["messages"])


def test_project_instructions_and_categories_through_mem0s_client(served: tuple[Any, LiveServer, str], upstream: ScriptedUpstream) -> None:
    from tests.engine.test_guidance import NO_HEALTH, labelled_model

    client, server, key = served
    upstream.handler = labelled_model
    assert client.get_project() == {"custom_instructions": None, "custom_categories": None}
    client.update_project(custom_instructions=NO_HEALTH, custom_categories=[{"food": "diet"}])
    assert client.get_project(fields=["custom_instructions"]) == {"custom_instructions": NO_HEALTH}
    client.add([{"role": "user", "content": "I'm vegetarian and I have asthma"}], user_id="ana")
    found = client.get_all(filters={"user_id": "ana"})["results"]
    assert [(m["memory"], m["categories"]) for m in found] == [("Is vegetarian", ["food"])]
    client.add([{"role": "user", "content": "I'm flying to Lisbon in June"}], user_id="ben", custom_categories=["travel"])
    assert client.get_all(filters={"user_id": "ben"})["results"][0]["categories"] == ["travel"]
    refused = httpx.patch(f"{server.url}/api/v1/orgs/organizations/memlane/projects/acme/", headers={"Authorization": f"Token {key}"},
                          json={"memory_depth": "deep"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "memory_depth"
    other = httpx.get(f"{server.url}/api/v1/orgs/organizations/memlane/projects/globex/", headers={"Authorization": f"Token {key}"})
    assert other.status_code == 404
