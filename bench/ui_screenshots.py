"""The README's inspector screenshots: `memlane serve` on a throwaway home, chatting with the
scripted upstream (it learns the statements in each user turn), a few memories and about a minute
of chats at a changing rate, then each page shot by Debian's chromium through playwright into
docs/images/.

    python bench/ui_screenshots.py
"""
from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"
QUESTIONS = [
    "I just moved to Oakland. Any dinner ideas near Lake Merritt?",
    "Can you suggest a cheese-free pizza place?",
    "We're flying to Lisbon in March. Which seat should I book?",
    "My sister visits next week. She likes Thai food.",
    "Where should we eat tonight?",
    "What should I cook for six people on Saturday?",
]


def statements_are_facts(req: ScriptedRequest) -> Reply | None:
    """Extraction learns the user's statements (not their questions); reconcile adds what is new."""
    if req.stage == "extract":
        said = (req.said_by("user") or [""])[0]
        return Reply.json({"facts": [s.strip() for s in re.findall(r"[^.?!]+\.", said) if s.strip()]})
    if req.stage == "reconcile":
        known = {m["text"] for m in req.reconcile_payload["existing_memories"]}
        new = [f for f in req.reconcile_payload["new_facts"] if f not in known]
        return Reply.json({"memory": [{"id": str(1000 + i), "text": f, "event": "ADD"} for i, f in enumerate(new)]})
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    upstream = ScriptedUpstream()
    upstream.handler = statements_are_facts
    upstream.start()
    home = Path(tempfile.mkdtemp())
    config = home / "memlane.json"
    config.write_text(json.dumps({"upstream": {"base_url": upstream.url, "api_key": "scripted"},
                                  "server": {"metrics_interval": 2}}))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "memlane.cli", "--config", str(config), "serve", "--port", str(port),
                             "--log-level", "warning"], env={**os.environ, "MEMLANE_HOME": str(home)}, stdout=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        api = httpx.Client(base_url=url, timeout=30)

        def add(text: str, user: str, when: str) -> str:
            body = {"messages": [{"role": "user", "content": text}], "user_id": user, "infer": False, "timestamp": when}
            return str(api.post("/v1/memories", json=body).json()["results"][0]["id"])

        mid = add("Is allergic to cheese", "alice", "2026-11-20T18:02:00Z")
        add("Loves Indian food", "alice", "2026-11-20T18:02:00Z")
        add("Lives in San Francisco", "alice", "2026-11-21T09:15:00Z")
        add("Prefers window seats on flights", "alice", "2026-11-24T12:40:00Z")
        add("Plays the cello in a community orchestra", "bob", "2026-11-22T20:05:00Z")
        api.put(f"/v1/memories/{mid}", json={"text": "Is severely allergic to cheese"})

        # about a minute of traffic whose rate rises and falls, so the charts have a shape
        rng = random.Random(7)
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < 60:
            user = rng.choice(["alice", "alice", "bob", "carol"])
            chat = {"model": "gpt-4.1-nano", "user_id": user, "messages": [{"role": "user", "content": rng.choice(QUESTIONS)}]}
            api.post("/v1/chat/completions", json=chat).raise_for_status()
            time.sleep(0.05 + 0.4 * abs((elapsed % 30) - 15) / 15)
        time.sleep(5)  # the last exchanges learnt, a last reading taken

        pages = (("ui-overview", "/ui"), ("ui-memories", "/ui/memories?user_id=alice&q=dinner+ideas"),
                 ("ui-memory", f"/ui/memories/{mid}"), ("ui-chats", "/ui/chats"), ("ui-metrics", "/ui/metrics"))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1100, "height": 620})
            for name, path in pages:
                page.goto(url + path)
                page.screenshot(path=str(OUT / f"{name}.png"), full_page=name != "ui-chats")
            browser.close()
    finally:
        proc.terminate()
        proc.wait(30)
        upstream.stop()


if __name__ == "__main__":
    main()
