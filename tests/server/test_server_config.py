"""The config's ``server`` section: keys file, drain time and request limits, used alike by
``memlane serve`` and ``memlane keys``; unknown keys in it are errors naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from memlane.cli import cli
from memlane.config import load_config
from memlane.errors import ConfigError
from memlane.server.app import create_app
from memlane.testing import ScriptedUpstream
from memlane.testing.live_server import LiveServer
from tests.scenarios import client_config


def test_the_server_section_sets_the_keys_file_and_the_limits(tmp_path: Path, upstream: ScriptedUpstream) -> None:
    keys_file = tmp_path / "team-keys.db"
    config = {**client_config(tmp_path / "s.db", upstream), "server": {"keys_path": str(keys_file), "max_body_bytes": 4096, "max_limit": 5}}
    config_file = tmp_path / "memlane.json"
    config_file.write_text(json.dumps(config))
    created = CliRunner().invoke(cli, ["--config", str(config_file), "keys", "create", "--project", "acme"], catch_exceptions=False)
    assert created.exit_code == 0 and keys_file.exists()
    key = created.stdout.strip().splitlines()[0]
    with LiveServer(create_app(str(config_file), drain_seconds=1)) as server:
        auth = {"Authorization": f"Bearer {key}"}
        assert httpx.get(server.url + "/v1/whoami", headers=auth).json() == {"project": "acme"}
        assert httpx.post(server.url + "/v1/memories", headers={**auth, "content-type": "application/json"}, content=b"x" * 5000).status_code == 413
        r = httpx.post(server.url + "/v1/memories/search", headers=auth, json={"query": "q", "user_id": "a", "limit": 6})
        assert r.status_code == 400 and "at most 5" in r.json()["error"]["message"]
    listed = CliRunner().invoke(cli, ["--config", str(config_file), "keys", "list"], catch_exceptions=False)
    assert "acme" in listed.stdout


def test_unknown_server_keys_are_named() -> None:
    with pytest.raises(ConfigError, match="unknown config key 'server.max_bodies'"):
        load_config({"server": {"max_bodies": 1}})
    with pytest.raises(ConfigError, match="unknown config key 'vector_store.config.grpc_port'"):
        from memlane import Memory

        Memory({"vector_store": {"provider": "qdrant", "config": {"path": ":memory:", "grpc_port": 6334}}})
