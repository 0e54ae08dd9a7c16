"""The inspector clicked through in a real browser (headless chromium; the ``page`` fixture is in
``tests/server/conftest.py``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import httpx

from memlane.server.keys import KeyStore
from memlane.testing import ScriptedUpstream
from memlane.testing.live_server import LiveServer


def test_log_in_find_edit_and_delete_a_memory_in_a_browser(page: Any, make_server: Callable[..., LiveServer], tmp_path: Path,
                                                         upstream: ScriptedUpstream) -> None:
    keys = KeyStore(tmp_path / "keys.db")
    key, _ = keys.create("acme")
    other, _ = keys.create("globex")
    server = make_server(keys=keys, server={"metrics_interval": 1.0})  # 30 readings: 30 s of history, room for a busy machine
    for token, text in ((key, "Is allergic to cheese"), (key, "Loves Indian food"), (other, "Globex secret")):
        httpx.post(server.url + "/v1/memories", headers={"Authorization": f"Bearer {token}"},
                   json={"messages": text, "user_id": "alice", "infer": False}).raise_for_status()

    refused = watch_for_refusals(page)
    page.goto(server.url + "/ui")
    assert page.url.endswith("/ui/login")
    page.fill("input[name=key]", key)
    page.click("button:has-text('Log in')")
    assert page.url.endswith("/ui") and "project acme" in page.inner_text("header")
    assert page.eval_on_selector("header", "h => getComputedStyle(h).backgroundColor") == "rgb(29, 35, 48)"  # the stylesheet
    assert {c["name"] for c in page.context.cookies()} == {"memlane_csrf", "memlane_session"}
    assert key not in str(page.context.cookies()), "the browser holds a session, not the key"
    page.fill("input[aria-label='search the project']", "cheese")  # every scope of the project at once
    page.click("button:has-text('Search')")
    rows = page.locator("table tr").all_inner_texts()
    assert "Is allergic to cheese" in rows[1] and "user=alice" in rows[1] and "Globex secret" not in page.content()
    page.screenshot(path=str(tmp_path / "search.png"))
    page.click("text=Overview")
    page.click("text=alice")  # the scope on the overview
    assert "Loves Indian food" in page.content() and "Globex secret" not in page.content()

    page.fill("input[name=q]", "cheese")
    page.click("button:has-text('Show')")
    rows = page.locator("table tr").all_inner_texts()
    assert "Is allergic to cheese" in rows[1] and "score" in rows[0]
    page.click("text=Is allergic to cheese")
    page.fill("input[name=text]", "Is severely allergic to cheese")
    page.click("button:has-text('Save')")
    assert "Is allergic to cheese → Is severely allergic to cheese" in page.inner_text("table")

    page.click("text=Delete…")
    page.click("button:has-text('Delete')")
    assert "user_id=alice" in page.url
    assert "Is severely allergic to cheese" not in page.content() and "Loves Indian food" in page.content()
    page.screenshot(path=str(tmp_path / "memories.png"))

    chat = {"model": "m", "user_id": "alice", "messages": [{"role": "user", "content": "Where should we eat tonight?"}]}
    httpx.post(server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=chat).raise_for_status()
    page.click("text=Recent chats")
    card = page.inner_text("main")
    assert "Where should we eat tonight?" in card and "Loves Indian food" in card and "Globex secret" not in card

    page.click("text=Metrics")
    charts = page.locator("svg.chart")
    assert charts.count() == 6 and charts.first.is_visible()
    assert "Recall hit rate" in page.inner_text("main")
    page.click("text=The numbers behind the charts")
    deadline = time.monotonic() + 20
    while "100%" not in page.inner_text("#readings") and time.monotonic() < deadline:  # the chat's reading, once taken
        time.sleep(0.2)
        page.reload()
        page.click("text=The numbers behind the charts")
    assert "100%" in page.inner_text("#readings")  # the chat's recall injected memories
    assert page.locator("svg.chart").first.locator("rect").count() >= 1  # its requests, as bars
    legend = page.locator(".legend svg rect").first
    assert legend.get_attribute("fill", timeout=1000) and legend.bounding_box()["width"] > 5  # type: ignore[index]
    page.click("text=Overview")
    page.click("button:has-text('Log out')")
    assert page.url.endswith("/ui/login") and not any(c["name"] == "memlane_session" for c in page.context.cookies())
    page.goto(server.url + "/ui")
    assert page.url.endswith("/ui/login")
    assert refused == [], "every page keeps to its Content-Security-Policy"


def test_a_chats_card_shows_what_learning_dropped_and_why_in_a_browser(page: Any, server: LiveServer, upstream: ScriptedUpstream,
                                                                       tmp_path: Path) -> None:
    from memlane.testing import Reply

    def suggesting(req):  # type: ignore[no-untyped-def]
        if req.stage == "extract":
            return Reply.json({"facts": ["Loves hiking", "Golden Gate Park trails are a good place to go", "Where can I hike?"]})
        return Reply.text("Golden Gate Park trails are a good place to go.")

    upstream.handler = suggesting
    chat = {"model": "m", "user_id": "carol", "messages": [{"role": "user", "content": "I love hiking. Where can I hike?"}]}
    httpx.post(server.url + "/v1/chat/completions", json=chat).raise_for_status()
    refused = watch_for_refusals(page)
    deadline = time.monotonic() + 30
    page.goto(server.url + "/ui/chats")
    while "dropped" not in page.inner_text("main") and time.monotonic() < deadline:  # learnt in the background
        time.sleep(0.2)
        page.reload()
    card = page.inner_text("main")
    assert "Loves hiking" in card and "dropped: answer · Golden Gate Park trails are a good place to go" in card
    assert "dropped: question · Where can I hike?" in card
    dropped = page.locator("text=dropped: question").first
    assert dropped.is_visible() and dropped.bounding_box()["height"] > 5  # type: ignore[index]
    page.screenshot(path=str(tmp_path / "chats.png"))
    assert refused == []


def watch_for_refusals(page: Any) -> list[str]:
    """Chromium's complaints while the test clicks: CSP refusals (a style or image the policy
    blocks) and failed loads; the list fills as pages load."""
    seen: list[str] = []
    page.on("console", lambda m: seen.append(m.text) if m.type in ("error", "warning") else None)

    def failed(request: Any) -> None:
        # a page navigated away from while it still loads is aborted by the browser itself (a
        # loaded machine shows it: logout's redirect still in flight when the test goes on)
        if not (request.resource_type == "document" and request.failure == "net::ERR_ABORTED"):
            seen.append(f"failed {request.url} ({request.failure})")

    page.on("requestfailed", failed)
    return seen


def test_a_page_elsewhere_cannot_log_the_visitor_into_its_own_project(launch_chromium: Callable[..., Any], make_server: Callable[..., LiveServer],
                                                                      tmp_path: Path, upstream: ScriptedUpstream) -> None:
    """Login CSRF: a page on another port of this machine (loopback passes the Origin check,
    and another port is the same site, so SameSite=Strict cookies go along) posts a hidden login form with the attacker's key.
    Without the token the server refuses it, and the visitor is logged into nothing."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    keys = KeyStore(tmp_path / "keys.db")
    attackers, _ = keys.create("evilcorp")
    server = make_server(keys=keys)
    form = (f'<!doctype html><title>prize</title><form id="f" method="post" action="{server.url}/ui/login">'
            f'<input name="key" value="{attackers}"><input name="csrf" value="guessed"></form>'
            '<script>document.getElementById("f").submit()</script>').encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(form)))
            self.end_headers()
            self.wfile.write(form)

        def log_message(self, *args: Any) -> None:
            pass

    site = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        page = launch_chromium()
        page.goto(server.url + "/ui/login")  # the visitor has been here: the browser holds a CSRF cookie
        with page.expect_navigation(url=f"{server.url}/ui**"):
            page.goto(f"http://127.0.0.1:{site.server_address[1]}/")
        page.wait_for_load_state()
        assert "came from another site" in page.content() and "evilcorp" not in page.content()
        page.goto(server.url + "/ui")
        assert page.url.endswith("/ui/login"), "not logged into the attacker's project"
        assert not any(c["name"] == "memlane_session" for c in page.context.cookies())
    finally:
        site.shutdown()
