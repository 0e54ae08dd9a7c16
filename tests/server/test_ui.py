"""The memory inspector's pages over real HTTP: what a person sees, and who may see it.
(Clicking through in a real browser is issue 15's next step.)"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Callable

import httpx
import pytest

from memlane.server.keys import KeyStore
from memlane.testing import Reply, ScriptedUpstream
from memlane.testing.live_server import LiveServer


def csrf_of(page: str) -> str:
    """The CSRF token a page's forms repeat."""
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def log_in(browser: httpx.Client, key: str) -> httpx.Response:
    """What a person does: open the login page (it sets the CSRF cookie), post the form."""
    return browser.post("/ui/login", data={"key": key, "csrf": csrf_of(browser.get("/ui/login").text)})


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


def test_the_inspector_lists_expired_memories_marked_expired_and_immutable_ones_marked(server: LiveServer) -> None:
    """A search and a chat leave an expired memory out; the inspector shows it, saying so."""
    api = httpx.Client(base_url=server.url)
    gone = add(api, "Has a trial plan", "alice", expiration_date="2020-01-31")
    add(api, "Has a museum pass", "alice", expiration_date="2999-12-31")
    veg = add(api, "Is vegetarian", "alice", immutable=True)
    listed = api.get("/ui/memories", params={"user_id": "alice"}).text
    assert "Has a trial plan</a> <span class=\"badge expired\">expired</span>" in listed
    assert "Has a museum pass</a> <span class=\"muted\">expires 2999-12-31</span>" in listed
    assert "Is vegetarian</a> <span class=\"badge\">immutable</span>" in listed
    found = api.get("/ui/memories", params={"user_id": "alice", "q": "trial plan"}).text
    assert "Has a trial plan" in found and "badge expired" in found
    page = api.get(f"/ui/memories/{gone}").text
    assert "2020-01-31" in page and "badge expired" in page
    assert "immutable" in api.get(f"/ui/memories/{veg}").text and "immutable" not in page


def test_the_overview_searches_every_scope_of_the_project_and_no_other(make_server: Callable[..., LiveServer], tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys.db")
    key_a, _ = keys.create("acme")
    key_b, _ = keys.create("globex")
    server = make_server(keys=keys)
    acme = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key_a}"})
    add(acme, "Is allergic to cheese", "alice")
    add(acme, "Loves Indian food", "alice")
    add(acme, "Keeps a cheese shop in Lyon", "bob")
    add(acme, "Cheese tasting on Friday", "carol", expiration_date="2020-01-01")
    acme.post("/v1/memories", json={"messages": "Ships cheese weekly", "agent_id": "deliveries", "infer": False}).raise_for_status()
    add(httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key_b}"}), "Globex cheese secret", "alice")

    browser = httpx.Client(base_url=server.url)
    log_in(browser, key_a)
    assert 'action="/ui/search"' in browser.get("/ui").text
    page = html.unescape(browser.get("/ui/search", params={"q": "cheese"}).text)
    for text in ("Is allergic to cheese", "Keeps a cheese shop in Lyon", "Ships cheese weekly", "Cheese tasting on Friday"):
        assert text in page, text
    assert "Globex" not in page, "another project's memories"
    assert "badge expired" in page and 'href="/ui/memories?user_id=bob"' in page and 'href="/ui/memories?agent_id=deliveries"' in page
    assert "of 4 scopes" in page
    assert "Search the project" in browser.get("/ui/search").text  # no query: the form alone


def test_the_overview_shows_the_projects_instructions_and_categories_and_lists_show_each_memorys(server: LiveServer) -> None:
    api = httpx.Client(base_url=server.url)
    assert "none (memlane project set" in api.get("/ui").text
    api.patch("/v1/project", json={"custom_instructions": "Never store <health> data.", "custom_categories": [{"food": "diet"}, "travel"]}).raise_for_status()
    overview = api.get("/ui").text
    assert "Never store &lt;health&gt; data." in overview and '<span class="badge" title="diet">food</span>' in overview
    assert '<span class="badge">travel</span>' in overview
    add(api, "Is vegetarian", "ana", metadata={"categories": ["food"]})
    assert '<span class="badge">food</span>' in api.get("/ui/memories", params={"user_id": "ana"}).text


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
    refused = log_in(browser, "ml-wrong")
    assert refused.status_code == 401 and "invalid or revoked API key" in refused.text
    logged_in = log_in(browser, key_b)
    cookie = logged_in.headers["set-cookie"].lower()
    assert logged_in.status_code == 303 and "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
    page = browser.get("/ui/memories", params={"user_id": "alice"}).text
    assert "Globex&#39;s own note" in page and "Acme" not in page and "globex" in browser.get("/ui").text
    browser.post("/ui/logout", data={"csrf": browser.cookies["memlane_csrf"]})
    assert browser.get("/ui").status_code == 303


def test_logging_in_and_out_takes_the_forms_csrf_token(make_server: Callable[..., LiveServer], tmp_path: Path,
                                                        upstream: ScriptedUpstream) -> None:
    """A page elsewhere cannot log a visitor into the attacker's project (whose memories they
    would then read or plant), nor log them out: those forms need the token like every other."""
    keys = KeyStore(tmp_path / "keys.db")
    victims, _ = keys.create("acme")
    attackers, _ = keys.create("evilcorp")
    server = make_server(keys=keys)
    browser = httpx.Client(base_url=server.url)
    assert 'name="csrf"' in browser.get("/ui/login").text and browser.cookies.get("memlane_csrf")
    for forged in ({"key": attackers}, {"key": attackers, "csrf": "guess"}, {"key": attackers, "csrf": ""}):
        refused = browser.post("/ui/login", data=forged)
        assert refused.status_code == 403 and "memlane_session" not in refused.headers.get("set-cookie", ""), forged
    cross_site = httpx.post(server.url + "/ui/login", data={"key": attackers, "csrf": "x"}, cookies={"memlane_csrf": "y"})
    assert cross_site.status_code == 403 and "set-cookie" not in cross_site.headers
    assert browser.get("/ui").status_code == 303, "not logged in to anything"

    assert log_in(browser, victims).status_code == 303 and "acme" in browser.get("/ui").text
    assert browser.post("/ui/logout").status_code == 403 and "acme" in browser.get("/ui").text
    assert browser.post("/ui/logout", data={"csrf": "guess"}).status_code == 403 and "acme" in browser.get("/ui").text
    out = browser.post("/ui/logout", data={"csrf": browser.cookies["memlane_csrf"]})
    assert out.status_code == 303 and out.headers["location"] == "/ui/login" and browser.get("/ui").status_code == 303


def test_the_session_cookie_is_not_the_key_and_ends_at_logout_revocation_and_expiry(
        make_server: Callable[..., LiveServer], tmp_path: Path, upstream: ScriptedUpstream) -> None:
    """The cookie holds a session token (``memlane_session``), not the API key; a second server
    on the same keys file (another ``--workers`` process) honours it; logging out, revoking the
    key or the lifetime (8 hours) ends it, for a copy of the cookie too."""
    from memlane.server.keys import SESSION_SECONDS

    keys = KeyStore(tmp_path / "keys.db")
    key, info = keys.create("acme")
    first, second = make_server(keys=keys), make_server(keys=KeyStore(tmp_path / "keys.db"))
    browser = httpx.Client(base_url=first.url)
    logged_in = log_in(browser, key)
    session = browser.cookies["memlane_session"]
    assert key not in logged_in.headers["set-cookie"] and key not in session and "memlane_key" not in logged_in.headers["set-cookie"]
    assert f"max-age={SESSION_SECONDS}" in logged_in.headers["set-cookie"].lower() and SESSION_SECONDS <= 12 * 3600
    copied = httpx.Client(base_url=second.url, cookies={"memlane_session": session})
    assert copied.get("/ui").status_code == 200 and "acme" in copied.get("/ui").text  # another worker process: same keys file
    browser.post("/ui/logout", data={"csrf": browser.cookies["memlane_csrf"]})
    assert copied.get("/ui").status_code == 303, "logging out ended the session, not only this browser's cookie"
    assert httpx.get(first.url + "/ui", cookies={"memlane_key": key}).status_code == 303, "a key is no cookie"

    log_in(browser, key)
    assert browser.get("/ui").status_code == 200
    keys.revoke(info.id)
    assert browser.get("/ui").status_code == 303, "revoking the key ended its session"

    other, _ = keys.create("acme")
    token, _ = keys.start_session(other, seconds=0.2)
    assert keys.session(token) is not None
    time.sleep(0.3)
    assert keys.session(token) is None and httpx.get(first.url + "/ui", cookies={"memlane_session": token}).status_code == 303


def test_every_inspector_answer_forbids_framing_sniffing_and_anything_but_its_own_stylesheet(server: LiveServer) -> None:
    api = httpx.Client(base_url=server.url)
    memory_id = add(api, "Lives in Paris", "alice")
    answers = [api.get("/ui"), api.get("/ui/login"), api.get("/ui/memories", params={"user_id": "alice"}),
               api.get(f"/ui/memories/{memory_id}"), api.get("/ui/memories/no-such-id"), api.get("/ui/chats"),
               api.get("/ui/metrics"), api.get("/ui/inspector.css"), api.get("/ui/memories", params={"page": 0}),
               api.get("/ui/nothing-here"), api.post(f"/ui/memories/{memory_id}/delete", data={"csrf": "forged"}),
               api.get("/ui", headers={"host": "rebind.attacker.example"})]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 404, 200, 200, 200, 400, 404, 403, 421]
    for answer in answers:
        headers = answer.headers
        policy = {d.split()[0]: d.split()[1:] for d in headers["content-security-policy"].split("; ")}
        assert policy["frame-ancestors"] == ["'none'"] and policy["default-src"] == ["'none'"], answer.url
        assert policy["style-src"] == ["'self'"] and "script-src" not in policy and policy["form-action"] == ["'self'"]
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
    assert answers[7].headers["content-type"].startswith("text/css") and "header {" in answers[7].text
    for page in answers[:4]:
        assert "style=" not in page.text and "<style" not in page.text and "<script" not in page.text, page.url
    assert "content-security-policy" not in api.get("/healthz").headers  # the API's answers are JSON, not pages


def test_over_https_the_cookies_take_the_host_prefix(tmp_path: Path, upstream: ScriptedUpstream) -> None:
    """``__Host-`` needs Secure and Path=/, which a browser keeps only over https; plain http
    (the loopback default) keeps the plain names. The app itself, through httpx's ASGI transport."""
    import asyncio

    from memlane.server.app import create_app
    from tests.scenarios import client_config

    keys = KeyStore(tmp_path / "keys.db")
    key, _ = keys.create("acme")
    app = create_app(client_config(tmp_path / "server.db", upstream), keys=keys)

    async def walk() -> None:
        plain = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://127.0.0.1", cookies={"memlane_csrf": "t"})
        async with plain:  # a cookie without the prefix (set over http, or by a sibling subdomain) does not count here
            assert (await plain.post("/ui/login", data={"key": key, "csrf": "t"})).status_code == 403
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://127.0.0.1") as browser:
            form = await browser.get("/ui/login")
            csrf = form.headers["set-cookie"]
            assert csrf.startswith("__Host-memlane_csrf=") and "; secure" in csrf.lower() and "path=/;" in csrf.lower()
            assert "domain" not in csrf.lower()
            logged_in = await browser.post("/ui/login", data={"key": key, "csrf": csrf_of(form.text)})
            session = logged_in.headers["set-cookie"].lower()
            assert logged_in.status_code == 303 and session.startswith("__host-memlane_session=") and "; secure" in session
            assert "path=/;" in session and (await browser.get("/ui")).status_code == 200

    asyncio.run(walk())


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


def test_recent_chats_show_the_facts_learning_dropped_and_why(server: LiveServer, upstream: ScriptedUpstream) -> None:
    """A small model's extraction handed back the assistant's suggestion and a question beside
    the user's fact: the chat's card says what was learnt and what was dropped, and why."""
    from tests.threads import wait_until

    def suggesting(req):  # type: ignore[no-untyped-def]
        if req.stage == "extract":
            return Reply.json({"facts": ["Loves hiking", "Golden Gate Park trails are a good place to go", "Where can I hike?"]})
        return Reply.text("Golden Gate Park trails are a good place to go.")

    upstream.handler = suggesting
    api = httpx.Client(base_url=server.url)
    chat = {"model": "m", "user_id": "carol", "messages": [{"role": "user", "content": "I love hiking. Where can I hike?"}]}
    assert api.post("/v1/chat/completions", json=chat).status_code == 200
    assert wait_until(lambda: "dropped" in api.get("/ui/chats").text, 30)
    page = html.unescape(api.get("/ui/chats").text)
    assert "ADD" in page and "Loves hiking" in page
    assert "dropped: answer · Golden Gate Park trails are a good place to go" in page
    assert "dropped: question · Where can I hike?" in page
    assert [m["memory"] for m in api.get("/v1/memories", params={"user_id": "carol"}).json()["results"]] == ["Loves hiking"]


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
    server = make_server(keys=keys, server={"metrics_interval": 1.0})  # 30 readings: 30 s of history, room for a busy machine
    acme = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key_a}"})
    globex = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key_b}"})
    browser = httpx.Client(base_url=server.url)
    log_in(browser, key_a)
    assert wait_until(lambda: "0 so far" not in browser.get("/ui/metrics").text, 10)  # acme's baseline reading was taken

    add(acme, "Is allergic to cheese", "alice")
    for question in ("Any cheese I should avoid?", "Dinner ideas?", "Where should we eat?"):
        chat = {"model": "m", "user_id": "alice", "messages": [{"role": "user", "content": question}]}
        assert acme.post("/v1/chat/completions", json=chat).status_code == 200
    chat = {"model": "m", "user_id": "nobody-known", "messages": [{"role": "user", "content": "Hello there"}]}
    assert globex.post("/v1/chat/completions", json=chat).status_code == 200

    def chats_charted() -> int:
        return sum(int(row[2]) for row in readings(browser.get("/ui/metrics").text))

    assert wait_until(lambda: chats_charted() == 3, 20)  # acme's 3 chats, none of globex's
    page = html.unescape(browser.get("/ui/metrics").text)
    assert page.count('<svg class="chart"') == 6 and "<rect" in page and "Recall latency. Latest: p50" in page
    rows = readings(page)
    assert sum(int(row[1]) for row in rows) == 4  # the add and the 3 chats
    assert {row[4] for row in rows if row[3] != "0"} == {"100%"}  # every recall found alice's allergy
    assert all(float(row[5].split(" / ")[1]) > 0 for row in rows if row[3] != "0")  # a recall p95 wherever there were recalls
    assert "100% of 3" in page and ">3<" in page.split("chats</div>", 1)[1][:60]
    log_in(browser, key_b)
    assert "0% of 1" in html.unescape(browser.get("/ui/metrics").text)  # globex: one recall, nothing known
    assert httpx.get(server.url + "/ui/metrics").status_code == 303  # no key, no page


def test_metrics_charts_can_be_turned_off(make_server: Callable[..., LiveServer]) -> None:
    server = make_server(server={"metrics_interval": 0})
    page = httpx.get(server.url + "/ui/metrics").text
    assert "The charts are off" in page and "<svg" not in page


@pytest.mark.slow
def test_a_login_holds_on_every_worker_of_memlane_serve(tmp_path: Path, upstream: ScriptedUpstream, isolated_env: Path) -> None:
    """Sessions live in the keys file, not in a process: with ``--workers 2`` a browser's
    requests land on either worker and every one knows the session; logging out on one ends it
    on both."""
    import json

    from tests.scenarios import client_config, start_serve
    from tests.server.test_auth import free_port

    key, _ = KeyStore(isolated_env / "keys.db").create("acme")
    config = tmp_path / "memlane.json"
    config.write_text(json.dumps(client_config(tmp_path / "shared.db", upstream)))
    port = free_port()
    proc = start_serve(["--config", str(config), "serve", "--workers", "2", "--port", str(port), "--log-level", "warning"],
                       isolated_env, port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers={"Connection": "close"}) as browser:
            assert log_in(browser, key).status_code == 303
            assert [browser.get("/ui").status_code for _ in range(12)] == [200] * 12  # new connections spread over the workers
            session = browser.cookies["memlane_session"]
            browser.post("/ui/logout", data={"csrf": browser.cookies["memlane_csrf"]})
            copied = {"memlane_session": session}
            assert [httpx.get(f"http://127.0.0.1:{port}/ui", cookies=copied, headers={"Connection": "close"}).status_code
                    for _ in range(6)] == [303] * 6
    finally:
        proc.terminate()
        proc.wait(60)


def test_a_scopes_pages_read_only_their_own_rows(server: LiveServer) -> None:
    api = httpx.Client(base_url=server.url)
    api.post("/v1/memories", json={"messages": [f"fact number {i:03d}" for i in range(120)], "user_id": "alice", "infer": False})
    oldest = {"user_id": "alice", "sort": "oldest"}
    first, third = (api.get("/ui/memories", params={**oldest, "page": n}).text for n in (1, 3))
    assert "fact number 000" in first and "fact number 049" in first and "fact number 050" not in first and "page=2" in first
    assert "fact number 100" in third and "fact number 119" in third and "fact number 099" not in third and "page=4" not in third
    deep = api.get("/ui/memories", params={**oldest, "page": 10_000})
    assert deep.status_code == 200 and "fact number" not in deep.text  # one empty page, not 500,001 rows read
