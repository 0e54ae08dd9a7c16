"""Headless chromium for the tests that look at pages in a real browser: Debian's chromium,
driven by Python playwright with ``executable_path`` (never ``playwright install``; `make test`
installs chromium when it is missing)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def launch_chromium() -> Iterator[Callable[..., Any]]:
    """``launch_chromium(*extra_flags)`` → a new page of a freshly started headless chromium."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "chromium is missing: apt-get install -y chromium (make test does it)"
    with sync_playwright() as p:
        browsers: list[Any] = []

        def launch(*extra: str) -> Any:
            browsers.append(p.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, *extra]))
            return browsers[-1].new_page()

        try:
            yield launch
        finally:
            for browser in browsers:
                browser.close()


@pytest.fixture
def page(launch_chromium: Callable[..., Any]) -> Any:
    return launch_chromium()
