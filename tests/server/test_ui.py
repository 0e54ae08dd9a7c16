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
    assert "1 added · 1 updated · 0 deleted" in overview.text  # the May 2023 memory was added on its own date
    listed = api.get("/ui/memories", params={"user_id": "alice"}).text
    assert "Is severely allergic to cheese" in listed and "Loves Indian food" in listed and "2023-05-08 10:00:00" in listed
    found = api.get("/ui/memories", params={"user_id": "alice", "q": "cheese allergy"}).text
    assert "score" in found and found.index("Is severely allergic to cheese") < found.index("Loves Indian food")
    oldest = api.get("/ui/memories", params={"user_id": "alice", "sort": "oldest"}).text
    assert oldest.index("Is severely allergic to cheese") < oldest.index("Loves Indian food")  # said in May 2023
    assert listed.index("Loves Indian food") < listed.index("Is severely allergic to cheese")  # newest first by default
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

    learnt = next(m for m in api.get("/v1/memories", params={"user_id": "alice"}).json()["results"] if m["memory"] == "Loves Indian food")
    history = html.unescape(api.get(f"/ui/memories/{learnt['id']}").text)
    assert "the chat “I love Indian food. Dinner ideas?”" in history  # where it came from
    assert 'href="/ui/chats#chat-' in history and 'id="chat-' in page
    chat = {"model": "m", "user_id": "bob", "messages": [{"role": "user", "content": "Bob's own question"}]}
    assert api.post("/v1/chat/completions", json=chat).status_code == 200
    assert 'href="/ui/chats?user_id=alice"' in api.get("/ui/memories", params={"user_id": "alice"}).text
    alices = html.unescape(api.get("/ui/chats", params={"user_id": "alice"}).text)
    assert "I love Indian food" in alices and "Bob's own question" not in alices
    assert "Bob's own question" in html.unescape(api.get("/ui/chats").text)


def readings(page: str) -> list[list[str]]:
    """The rows of the Metrics page's table of readings (the numbers behind its charts)."""
    table = page.split('id="readings"', 1)[1].split("</table>", 1)[0]
    return [[cell.split(">", 1)[1] for cell in row.split("</td>")[:-1]] for row in table.split("<tr>")[2:] if "<td" in row]


def test_metrics_chart_this_projects_requests_recall_latency_and_hit_rate(make_server: Callable[..., LiveServer], tmp_path: Path,
                                                                           upstream: ScriptedUpstream) -> None:
    from tests.scenarios import restaurant_llm
    from tests.threads import wait_until

    upstream.handler = restaurant_llm
    keys = KeyStore(tmp_path / "keys.db")
    key_a, _ = keys.create("acme")
    key_b, _ = keys.create("globex")
    server = make_server(keys=keys, server={"metrics_interval": 0.2})
    acme = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key_a}"})
    globex = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key_b}"})
    browser = httpx.Client(base_url=server.url)
    browser.post("/ui/login", data={"key": key_a})
    assert wait_until(lambda: "0 so far" not in browser.get("/ui/metrics").text, 10)  # acme's baseline reading was taken

    add(acme, "Is allergic to cheese", "alice")
    for question in ("Any cheese I should avoid?", "Dinner ideas?", "Where should we eat?"):
        chat = {"model": "m", "user_id": "alice", "messages": [{"role": "user", "content": question}]}
        assert acme.post("/v1/chat/completions", json=chat).status_code == 200
    chat = {"model": "m", "user_id": "nobody-known", "messages": [{"role": "user", "content": "Hello there"}]}
    assert globex.post("/v1/chat/completions", json=chat).status_code == 200

    def chats_charted() -> int:
        return sum(int(row[2]) for row in readings(browser.get("/ui/metrics").text))

    assert wait_until(lambda: chats_charted() == 3, 10)  # acme's 3 chats, none of globex's
    page = html.unescape(browser.get("/ui/metrics").text)
    assert page.count("<svg") == 6 and "<rect" in page and "Recall latency. Latest: p50" in page
    rows = readings(page)
    assert sum(int(row[1]) for row in rows) == 4  # the add and the 3 chats
    assert {row[4] for row in rows if row[3] != "0"} == {"100%"}  # every recall found alice's allergy
    assert all(float(row[5].split(" / ")[1]) > 0 for row in rows if row[3] != "0")  # a recall p95 wherever there were recalls
    assert "100% of 3" in page and ">3<" in page.split("chats</div>", 1)[1][:60]
    browser.post("/ui/login", data={"key": key_b})
    assert "0% of 1" in html.unescape(browser.get("/ui/metrics").text)  # globex: one recall, nothing known
    assert httpx.get(server.url + "/ui/metrics").status_code == 303  # no key, no page


def test_metrics_charts_can_be_turned_off(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(server={"metrics_interval": 0})
    page = httpx.get(server.url + "/ui/metrics").text
    assert "The charts are off" in page and "<svg" not in page
