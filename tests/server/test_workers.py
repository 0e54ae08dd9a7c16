"""``memlane serve --workers N``: several processes on one port and one store."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from memlane.testing import ScriptedUpstream
from tests.scenarios import client_config, restaurant_llm, start_serve
from tests.server.test_auth import free_port


@pytest.mark.slow
def test_two_workers_share_one_store(tmp_path: Path, upstream: ScriptedUpstream, isolated_env: Path) -> None:
    upstream.handler = restaurant_llm
    config = tmp_path / "memlane.json"
    config.write_text(json.dumps(client_config(tmp_path / "shared.db", upstream)))
    port = free_port()
    proc = start_serve(["--config", str(config), "serve", "--workers", "2", "--port", str(port), "--log-level", "warning"],
                       isolated_env, port)
    url = f"http://127.0.0.1:{port}"
    try:
        children = [stat for stat in Path("/proc").glob("[0-9]*/stat")
                    if stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[1] == str(proc.pid)]
        assert len(children) >= 2, children
        with httpx.Client(base_url=url, timeout=30) as http:  # new connections spread over the workers
            for i in range(20):
                http.post("/v1/memories", json={"messages": f"Fact number {i}", "user_id": "alice", "infer": False},
                          headers={"Connection": "close"}).raise_for_status()
            listed = http.get("/v1/memories", params={"user_id": "alice"}).json()["results"]
        assert sorted(r["memory"] for r in listed) == sorted(f"Fact number {i}" for i in range(20))
    finally:
        proc.terminate()
        proc.wait(60)
