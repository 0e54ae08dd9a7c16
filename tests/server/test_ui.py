"""The memory inspector's pages over real HTTP: what a person sees, and who may see it.
(Clicking through in a real browser is issue 15's next step.)"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Callable

import httpx

from memlane.server.keys import KeyStore
from memlane.testing import ScriptedUpstream
from memlane.testing.live_server import LiveServer


def add(api: httpx.Client, text: str, user: str, **extra: object) -> str:
    body = {"messages": [{"role": "user", "content": text}], "user_id": user, "infer": False, **extra}
    added = api.post("/v1/memories", json=body)
    assert added.status_code == 200, added.text
    return str(added.json()["results"][0]["id"])


def test_without_keys_the_pages_show_what_memlane_knows(server: LiveServer) -> None:
    api = httpx.Client(base_url=server.url)
    memory_id = add(api, "Is allergic to cheese", "alice", metadata={"category": "food"}, timestamp="2023-05-08T10:00:00Z")
    add(api, "Loves Indian food", "alice")
    api.put(f"/v1/memories/{memory_id}", json={"text": "Is severely allergic to cheese"})

    overview = api.get("/ui")
    assert overview.status_code == 200 and "text/html" in overview.headers["content-type"]
    assert "alice" in overview.text and 'href="/ui/memories?user_id=alice"' in overview.text and ">2<" in overview.text
    listed = api.get("/ui/memories", params={"user_id": "alice"}).text
    assert "Is severely allergic to cheese" in listed and "Loves Indian food" in listed and "2023-05-08 10:00:00" in listed
    found = api.get("/ui/memories", params={"user_id": "alice", "q": "cheese allergy"}).text
    assert "score" in found and found.index("Is severely allergic to cheese") < found.index("Loves Indian food")
    filtered = api.get("/ui/memories", params={"user_id": "alice", "filters": '{"category": "food"}'}).text
    assert "Is severely allergic to cheese" in filtered and "Loves Indian food" not in filtered
    page = html.unescape(api.get(f"/ui/memories/{memory_id}").text)
    assert "UPDATE" in page and "Is allergic to cheese → Is severely allergic to cheese" in page and '"category": "food"' in page
    assert api.get("/ui/memories", params={"user_id": "alice", "filters": "{not json"}).status_code == 400
    assert api.get("/ui/memories/no-such-id").status_code == 404


def test_memories_are_escaped_not_rendered(server: LiveServer) -> None:
    api = httpx.Client(base_url=server.url)
    add(api, "<script>alert('x')</script> likes tea", "mallory")
    listed = api.get("/ui/memories", params={"user_id": "mallory"}).text
    assert "<script>alert" not in listed and "&lt;script&gt;" in listed


def test_with_keys_the_pages_ask_for_one_and_show_only_its_project(make_server: Callable[..., LiveServer], tmp_path: Path,
                                                                   upstream: ScriptedUpstream) -> None:
    keys = KeyStore(tmp_path / "keys.db")
    key_a, _ = keys.create("acme")
    key_b, _ = keys.create("globex")
    server = make_server(keys=keys)
    add(httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key_a}"}), "Acme's secret plan", "alice")
    add(httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key_b}"}), "Globex's own note", "alice")

    browser = httpx.Client(base_url=server.url)
    assert browser.get("/ui").status_code == 303 and browser.get("/ui").headers["location"] == "/ui/login"
    refused = browser.post("/ui/login", data={"key": "ml-wrong"})
    assert refused.status_code == 401 and "invalid or revoked API key" in refused.text
    logged_in = browser.post("/ui/login", data={"key": key_b})
    cookie = logged_in.headers["set-cookie"].lower()
    assert logged_in.status_code == 303 and "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
    page = browser.get("/ui/memories", params={"user_id": "alice"}).text
    assert "Globex&#39;s own note" in page and "Acme" not in page and "globex" in browser.get("/ui").text
    browser.post("/ui/logout")
    assert browser.get("/ui").status_code == 303


def test_edit_and_delete_go_through_the_engine_with_a_csrf_token(server: LiveServer) -> None:
    api = httpx.Client(base_url=server.url)
    memory_id = add(api, "Lives in Paris", "alice")
    browser = httpx.Client(base_url=server.url)
    page = browser.get(f"/ui/memories/{memory_id}").text
    token = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    assert browser.cookies.get("memlane_csrf") == token
    forged = httpx.post(f"{server.url}/ui/memories/{memory_id}/edit", data={"text": "Lives in Rome", "csrf": "guess"},
                        cookies={"memlane_csrf": "other"})
    assert forged.status_code == 403 and api.get(f"/v1/memories/{memory_id}").json()["memory"] == "Lives in Paris"
    edited = browser.post(f"/ui/memories/{memory_id}/edit", data={"text": "Lives in Lisbon", "csrf": token})
    assert edited.status_code == 303 and api.get(f"/v1/memories/{memory_id}").json()["memory"] == "Lives in Lisbon"
    assert "Lives in Paris → Lives in Lisbon" in html.unescape(browser.get(f"/ui/memories/{memory_id}").text)
    assert "Delete this memory?" in browser.get(f"/ui/memories/{memory_id}", params={"confirm": "delete"}).text
    deleted = browser.post(f"/ui/memories/{memory_id}/delete", data={"csrf": token})
    assert deleted.status_code == 303 and deleted.headers["location"] == "/ui/memories?user_id=alice"
    assert api.get(f"/v1/memories/{memory_id}").status_code == 404
    assert [e["event"] for e in api.get(f"/v1/memories/{memory_id}/history").json()] == ["ADD", "UPDATE", "DELETE"]


def test_recent_chats_show_the_query_the_injected_memories_and_what_was_learnt(server: LiveServer, upstream: ScriptedUpstream) -> None:
    from tests.scenarios import restaurant_llm
    from tests.threads import wait_until

    upstream.handler = restaurant_llm
    api = httpx.Client(base_url=server.url)
    add(api, "Is allergic to cheese", "alice")
    chat = {"model": "m", "user_id": "alice", "messages": [{"role": "user", "content": "I love Indian food. Dinner ideas?"}]}
    assert api.post("/v1/chat/completions", json=chat).status_code == 200
    assert wait_until(lambda: "Loves Indian food" in api.get("/ui/chats").text, 30)
    page = html.unescape(api.get("/ui/chats").text)
    assert "I love Indian food. Dinner ideas?" in page and "Is allergic to cheese" in page and "ADD" in page
    assert page.index("Is allergic to cheese") < page.index("Loves Indian food")  # injected first, learnt after
