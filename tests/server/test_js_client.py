"""The openai npm package (a real JS client) against memlane serve."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

import httpx
import pytest

from memlane.server.keys import KeyStore
from memlane.testing import Reply, ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import restaurant_llm

JS = Path(__file__).resolve().parents[1] / "js"


@pytest.fixture(scope="session")
def node_openai() -> Path:
    """Install the openai npm package once (npm registry; no browser, no binaries)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("node and npm are needed for the JS client test (apt-get install -y nodejs npm)")
    if not (JS / "node_modules" / "openai").exists():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS, check=True, timeout=300)
    return JS


def test_openai_npm_client(node_openai: Path, make_server: Callable[..., LiveServer], tmp_path: Path, upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    keys = KeyStore(tmp_path / "keys.db")
    key, _ = keys.create("js")
    server = make_server(keys=keys)
    done = subprocess.run(["node", "chat.mjs", server.url + "/v1", key, "alice"], cwd=node_openai, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["content"] == "Noted! Here is my suggestion."
    assert out["memories"] == []
    assert out["streamed"] == "Noted! Here is my suggestion." and out["usage"]["total_tokens"] > 0
    assert out["status"] == 401
    # what the JS client's exchange taught memlane lands in project "js"
    deadline = time.monotonic() + 30
    while True:
        listed = httpx.get(server.url + "/v1/memories", params={"user_id": "alice"}, headers={"Authorization": f"Bearer {key}"}).json()
        learnt = {r["memory"] for r in listed["results"]}
        if {"Is allergic to cheese", "Loves Indian food"} <= learnt or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert {"Is allergic to cheese", "Loves Indian food"} <= learnt


def test_openai_npm_client_sees_a_broken_stream_as_an_error(node_openai: Path, make_server: Callable[..., LiveServer], upstream: ScriptedUpstream) -> None:
    server = make_server()
    upstream.queue(Reply.text("This is a long answer that breaks off", reset_after=2))
    done = subprocess.run(["node", "broken_stream.mjs", server.url + "/v1", "unused"], cwd=node_openai, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["streamed"] == "This is "
    assert out["error"] is not None and "broke off the stream" in out["error"]["message"], out


def test_openai_npm_clients_responses_api(node_openai: Path, make_server: Callable[..., LiveServer], upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    server = make_server()
    httpx.post(server.url + "/v1/memories", json={"messages": "Is allergic to cheese", "user_id": "alice", "infer": False}).raise_for_status()
    done = subprocess.run(["node", "responses.mjs", server.url + "/v1", "unused", "alice"], cwd=node_openai, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["text"] == "Noted! Here is my suggestion." and out["exchange"]
    assert out["streamed"] == "Noted! Here is my suggestion." and out["kinds"][0] == "response.created"
    assert out["kinds"][-1] == "response.completed" and "Is allergic to cheese" in out["memories"]
    sent = upstream.model_requests("chat", protocol="responses")[-1].json
    assert sent["instructions"] == "You plan meals." and "Is allergic to cheese" in json.dumps(sent["input"])
