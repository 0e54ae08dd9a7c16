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
    server = make_server(keys=keys, server={"metrics_interval": 0.2})
    for token, text in ((key, "Is allergic to cheese"), (key, "Loves Indian food"), (other, "Globex secret")):
        httpx.post(server.url + "/v1/memories", headers={"Authorization": f"Bearer {token}"},
                   json={"messages": text, "user_id": "alice", "infer": False}).raise_for_status()

    page.goto(server.url + "/ui")
    assert page.url.endswith("/ui/login")
    page.fill("input[name=key]", key)
    page.click("button:has-text('Log in')")
    assert page.url.endswith("/ui") and "project acme" in page.inner_text("header")
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
    deadline = time.monotonic() + 10
    while "100%" not in page.inner_text("#readings") and time.monotonic() < deadline:  # the chat's reading, once taken
        time.sleep(0.2)
        page.reload()
        page.click("text=The numbers behind the charts")
    assert "100%" in page.inner_text("#readings")  # the chat's recall injected memories
    assert page.locator("svg.chart").first.locator("rect").count() >= 1  # its requests, as bars
