"""The API's own documentation pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), opened in
headless chromium as a new user opens them: they draw the operations of ``/openapi.json`` (an
OpenAPI 3.1 document), and every file they load comes from memlane itself."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from memlane.testing.live_server import LiveServer

#: where each page shows an operation's summary once it has read the document
SUMMARY = {"/docs": ".opblock-summary-description", "/redoc": "h2"}


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_api_docs_page_shows_the_operations_offline(page: Any, server: LiveServer, path: str) -> None:
    elsewhere: list[str] = []
    errors: list[str] = []

    def left_the_machine(request: Any) -> bool:
        """A request for another host that the browser did not refuse itself (CSP) before sending."""
        if urlsplit(request.url).netloc in ("", f"127.0.0.1:{server.port}") or request.url.startswith(("data:", "blob:")):
            return False
        return (request.failure or "") not in ("csp", "net::ERR_BLOCKED_BY_CSP")

    page.on("requestfinished", lambda r: elsewhere.append(r.url) if left_the_machine(r) else None)
    page.on("requestfailed", lambda r: elsewhere.append(f"{r.url} ({r.failure})") if left_the_machine(r) else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    html = httpx.get(server.url + path)
    assert html.status_code == 200 and not re.search(r"(src|href)=[\"']https?://", html.text), "no asset from the network"

    page.goto(server.url + path)
    page.locator(SUMMARY[path], has_text="The process is up").wait_for(state="visible", timeout=20_000)  # /healthz's
    assert page.locator(SUMMARY[path], has_text="Search").count() >= 1, "the other operations are there too"
    body = page.inner_text("body")
    assert "Unable to render this definition" not in body and "/v1/memories" in body.replace("\u200b", "")
    assert errors == [] and elsewhere == [], (errors, elsewhere)
