"""Two ``memlane serve`` processes on one PostgreSQL, serving the same user at once: no lost
update, no duplicate, every exchange learnt exactly once (advisory locks + SKIP LOCKED outbox)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from memlane.testing import Reply, ScriptedRequest, ScriptedUpstream
from tests.engine.test_concurrency import gym_counter


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_servers_on_one_postgres(tmp_path: Path, pg_uri: str, upstream: ScriptedUpstream, fast_embedder_config: dict[str, Any]) -> None:
    def script(req: ScriptedRequest) -> Reply:
        return Reply.text("Good workout!") if req.stage == "chat" else gym_counter(req)

    upstream.handler = script
    config = tmp_path / "memlane.json"
    config.write_text(json.dumps({
        "vector_store": {"provider": "pgvector", "config": {"dsn": pg_uri, "schema_name": "multi_instance"}},
        "embedder": fast_embedder_config,
        "upstream": {"base_url": upstream.url, "api_key": "k", "max_retries": 0},
        "llm": {"provider": "openai", "config": {"max_retries": 0}},
        "outbox": {"retry_base_seconds": 0.05, "poll_seconds": 0.05},
    }))
    servers = []
    for n in range(2):
        port = free_port()
        env = {**os.environ, "MEMLANE_HOME": str(tmp_path / f"home{n}")}
        proc = subprocess.Popen([sys.executable, "-m", "memlane.cli", "--config", str(config), "serve", "--port", str(port),
                                 "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        servers.append((proc, f"http://127.0.0.1:{port}"))
    try:
        for proc, url in servers:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else "server died"
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        a, b = servers[0][1], servers[1][1]
        httpx.post(a + "/v1/memories", json={"messages": "Gym visits: 0", "user_id": "alice", "infer": False}).raise_for_status()

        def chat(i: int) -> int:
            url = (a, b)[i % 2]
            r = httpx.post(url + "/v1/chat/completions", timeout=30, json={
                "model": "m", "user_id": "alice", "messages": [{"role": "user", "content": f"I went to the gym again ({i})"}]})
            return r.status_code

        with ThreadPoolExecutor(6) as pool:
            assert set(pool.map(chat, range(12))) == {200}
        deadline = time.monotonic() + 60
        while True:
            memories = httpx.get(b + "/v1/memories", params={"user_id": "alice"}).json()["results"]
            texts = [m["memory"] for m in memories]
            if texts == ["Gym visits: 12"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert texts == ["Gym visits: 12"], "every exchange learnt once, no update lost, nothing duplicated"
        history = httpx.get(a + f"/v1/memories/{memories[0]['id']}/history").json()
        assert [e["event"] for e in history] == ["ADD"] + ["UPDATE"] * (len(history) - 1)
        counts = [int(e["new_memory"].rsplit(" ", 1)[1]) for e in history]
        assert counts == sorted(set(counts)) and counts[-1] == 12, "each commit (of one exchange or a batch) built on the last"
        assert sum(len(r.exchanges) for r in upstream.chat_requests("extract")) == 12, "each exchange asked about once"
        metrics = httpx.get(a + "/metrics").text + httpx.get(b + "/metrics").text
        assert 'memlane_outbox_depth{project="default"} 0' in metrics
    finally:
        for proc, _ in servers:
            proc.terminate()
        for proc, _ in servers:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
