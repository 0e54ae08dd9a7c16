"""Keys close the server and nothing re-opens it: once keys are required (a non-loopback bind,
or any key ever created), a request needs an active key, and an empty key set means no access."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from memlane.server.app import create_app
from memlane.server.keys import KeyStore, check_project
from memlane.errors import ValidationError
from memlane.testing import ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import client_config, restaurant_llm, start_serve

CLOSED = [("GET", "/v1/memories?user_id=alice"), ("POST", "/v1/memories/search"), ("POST", "/v1/chat/completions"),
          ("GET", "/v1/models"), ("GET", "/metrics"), ("GET", "/v1/whoami")]


def assert_closed(url: str, headers: dict[str, str] | None = None) -> None:
    for method, path in CLOSED:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "user_id": "alice"} if "chat" in path else {"query": "x", "user_id": "alice"}
        r = httpx.request(method, url + path, headers=headers or {}, json=body if method == "POST" else None)
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert r.json()["error"]["code"] == "invalid_api_key"


def test_revoking_the_last_key_closes_a_loopback_server(make_server: Callable[..., LiveServer], tmp_path: Path, upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    keys = KeyStore(tmp_path / "keys.db")
    server = make_server(keys=keys)
    assert httpx.get(server.url + "/v1/memories?user_id=alice").status_code == 200, "no key ever made on loopback: open"
    key, info = keys.create("default")
    assert_closed(server.url)  # the first key takes effect on the next request, no restart
    assert httpx.get(server.url + "/v1/memories?user_id=alice", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    keys.revoke(info.id)
    assert_closed(server.url)
    assert_closed(server.url, {"Authorization": f"Bearer {key}"})
    r = httpx.get(server.url + "/v1/memories?user_id=alice", headers={"Authorization": f"Bearer {key}"})
    assert "none is active" in r.json()["error"]["message"]
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_a_server_that_requires_keys_is_closed_before_the_first_key(tmp_path: Path, upstream: ScriptedUpstream) -> None:
    keys = KeyStore(tmp_path / "keys.db")
    app = create_app(client_config(tmp_path / "s.db", upstream), keys=keys, require_keys=True, drain_seconds=1)
    with LiveServer(app) as server:
        assert_closed(server.url)
        key, info = keys.create("acme")
        assert httpx.get(server.url + "/v1/whoami", headers={"Authorization": f"Token {key}"}).json() == {"project": "acme"}
        keys.revoke(info.id)
        assert_closed(server.url, {"Authorization": f"Token {key}"})


def test_metrics_need_a_key_and_name_only_its_project(make_server: Callable[..., LiveServer], tmp_path: Path, upstream: ScriptedUpstream) -> None:
    upstream.handler = restaurant_llm
    keys = KeyStore(tmp_path / "keys.db")
    key_a, _ = keys.create("acme")
    key_b, _ = keys.create("globex")
    server = make_server(keys=keys)
    for key in (key_a, key_b):  # load both projects
        httpx.get(server.url + "/v1/memories?user_id=alice", headers={"Authorization": f"Bearer {key}"}).raise_for_status()
    assert httpx.get(server.url + "/metrics").status_code == 401
    text = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {key_a}"}).text
    assert 'project="acme"' in text and "globex" not in text and 'project="default"' not in text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_memlane_serve_on_all_interfaces_stays_closed_after_memlane_keys_revoke(
    tmp_path: Path, upstream: ScriptedUpstream, fast_embedder_config: dict[str, Any], isolated_env: Path
) -> None:
    """The reported attack, as an operator would hit it: ``memlane serve --host 0.0.0.0`` with one
    key, then ``memlane keys revoke`` from another shell while it runs."""
    upstream.handler = restaurant_llm
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(client_config(tmp_path / "served.db", upstream, embedder=fast_embedder_config)))
    env = {**os.environ, "MEMLANE_HOME": str(isolated_env), "MEMLANE_CONFIG": str(config_path)}
    memlane = [sys.executable, "-m", "memlane.cli"]
    refused = subprocess.run([*memlane, "serve", "--host", "0.0.0.0", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "refusing to serve" in refused.stderr
    key = subprocess.run([*memlane, "keys", "create", "--project", "default"], env=env, capture_output=True, text=True, check=True).stdout.strip()
    key_id = KeyStore(isolated_env / "keys.db").list()[0].id
    port = free_port()
    proc = start_serve(["serve", "--host", "0.0.0.0", "--port", str(port), "--log-level", "warning"], isolated_env, port,
                       env={"MEMLANE_CONFIG": str(config_path)})
    url = f"http://127.0.0.1:{port}"
    try:
        auth = {"Authorization": f"Bearer {key}"}
        httpx.post(url + "/v1/memories", headers=auth, json={"messages": "Secret: the vault code is 4321", "user_id": "alice", "infer": False}).raise_for_status()
        subprocess.run([*memlane, "keys", "revoke", key_id], env=env, check=True, capture_output=True)
        assert_closed(url)
        assert_closed(url, auth)
        assert "4321" not in httpx.get(url + "/v1/memories?user_id=alice").text
    finally:
        proc.terminate()
        proc.wait(30)


def test_project_names_are_matched_whole() -> None:
    assert check_project("acme") == "acme"
    for bad in ("acme\n", "acme\n.evil", "", ".hidden", "a/b", "x" * 64):
        with pytest.raises(ValidationError):
            check_project(bad)


def test_memories_written_before_the_first_key_are_read_with_a_default_key(make_server: Callable[..., LiveServer], tmp_path: Path,
                                                                           upstream: ScriptedUpstream) -> None:
    keys = KeyStore(tmp_path / "keys.db")
    server = make_server(keys=keys)
    httpx.post(server.url + "/v1/memories", json={"messages": "Is allergic to cheese", "user_id": "alice", "infer": False}).raise_for_status()
    key, _ = keys.create("default")  # what `memlane keys create` makes without --project
    listed = httpx.get(server.url + "/v1/memories?user_id=alice", headers={"Authorization": f"Bearer {key}"}).json()["results"]
    assert [r["memory"] for r in listed] == ["Is allergic to cheese"]


def test_a_server_without_a_model_server_says_so_at_start_and_in_readyz(tmp_path: Path, isolated_env: Path) -> None:
    """`make run` on a fresh machine: memory REST works, chats cannot; both are said, not hidden."""
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "m.db")}}}))
    app = create_app(str(config), keys=KeyStore(tmp_path / "keys.db"), drain_seconds=1)
    with LiveServer(app) as server:
        ready = httpx.get(server.url + "/readyz").json()
        assert ready["status"] == "ready" and ready["memory"] == "ready" and "OPENAI_BASE_URL" in ready["chat"]
        assert "ANTHROPIC_API_KEY" in ready["messages"], "Anthropic Messages says what it lacks too"
        r = httpx.post(server.url + "/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 503 and "OPENAI_BASE_URL" in r.json()["error"]["message"]
    port = free_port()
    env = {**os.environ, "MEMLANE_HOME": str(isolated_env), "MEMLANE_CONFIG": str(config)}
    proc = subprocess.Popen([sys.executable, "-m", "memlane.cli", "serve", "--port", str(port), "--log-level", "warning"],
                            env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        banner = "".join(proc.stdout.readline() for _ in range(4))  # serving on, inspector, keys hint, chat route
        assert "no model server configured" in banner and "OPENAI_BASE_URL" in banner
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_key_made_by_another_process_is_seen_on_the_next_ask_however_often_none_was_seen(tmp_path: Path) -> None:
    # the server remembers "no key" with the file's change counter; `memlane keys create` is
    # another process with its own connection, and its commit must still be seen at once
    server_side = KeyStore(tmp_path / "keys.db")
    assert not any(server_side.any_created() for _ in range(50))
    subprocess.run([sys.executable, "-c", "import sys; from memlane.server.keys import KeyStore; KeyStore(sys.argv[1]).create('default')",
                    str(tmp_path / "keys.db")], check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert server_side.any_created()
