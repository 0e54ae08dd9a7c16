"""``memlane memories ...`` on the default store (MEMLANE_HOME points at a temp folder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from click.testing import CliRunner

from memlane.cli import cli
from memlane.testing import Reply, ScriptedUpstream


def run(*args: str) -> object:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_memories_round_trip_on_the_default_store(isolated_env: Path) -> None:
    added = run("memories", "add", "Is allergic to cheese", "Loves Indian food", "--user", "alice", "--no-infer", "--metadata", '{"category": "food"}')
    assert [r["event"] for r in added["results"]] == ["ADD", "ADD"]
    assert (isolated_env / "memlane.db").exists()
    hits = run("memories", "search", "cheese", "--user", "alice", "--limit", "1")["results"]
    assert hits[0]["memory"] == "Is allergic to cheese"
    memory_id = hits[0]["id"]
    listed = run("memories", "list", "--user", "alice", "--filters", '{"category": "food"}')["results"]
    assert len(listed) == 2
    assert run("memories", "get", memory_id)["memory"] == "Is allergic to cheese"
    assert run("memories", "update", memory_id, "Is severely allergic to cheese")["memory"] == "Is severely allergic to cheese"
    assert run("memories", "delete", memory_id) == {"message": "Memory deleted successfully!"}
    assert [e["event"] for e in run("memories", "history", memory_id)] == ["ADD", "UPDATE", "DELETE"]
    assert run("memories", "delete", "--all", "--user", "alice") == {"message": "Memories deleted successfully!"}
    assert run("memories", "list", "--user", "alice") == {"results": []}


def test_memories_add_takes_an_expiry_and_immutable_and_list_hides_expired(isolated_env: Path) -> None:
    run("memories", "add", "Has a trial plan", "--user", "alice", "--no-infer", "--expires", "2020-01-31")
    (veg,) = run("memories", "add", "Is vegetarian", "--user", "alice", "--no-infer", "--immutable")["results"]
    assert [r["memory"] for r in run("memories", "list", "--user", "alice")["results"]] == ["Is vegetarian"]
    shown = run("memories", "list", "--user", "alice", "--show-expired")["results"]
    assert {(r["memory"], r.get("expiration_date"), r.get("immutable")) for r in shown} == {
        ("Has a trial plan", "2020-01-31", None), ("Is vegetarian", None, True)}
    assert len(run("memories", "search", "plan", "--user", "alice", "--show-expired")["results"]) == 2
    refused = CliRunner().invoke(cli, ["memories", "update", veg["id"], "Eats fish"])
    assert refused.exit_code == 1 and "immutable" in refused.output
    table = CliRunner(env={"COLUMNS": "200"}).invoke(cli, ["memories", "list", "--user", "alice", "--show-expired", "--table"]).output
    assert "expires 2020-01-31" in table and "immutable" in table


def test_project_sets_and_shows_instructions_and_categories(isolated_env: Path) -> None:
    assert run("project", "show") == {"custom_instructions": None, "custom_categories": None}
    run("project", "set", "--instructions", "Never store health information.", "--category", "food", "--category", "travel")
    assert run("project", "show") == {"custom_instructions": "Never store health information.", "custom_categories": ["food", "travel"]}
    run("project", "set", "--categories", '[{"food": "diet"}]')
    assert run("project", "show")["custom_categories"] == [{"food": "diet"}]
    refused = CliRunner().invoke(cli, ["project", "set", "--categories", "{nope"])
    assert refused.exit_code != 0 and "--categories" in refused.output


def test_infer_uses_the_configured_llm(tmp_path: Path, upstream: ScriptedUpstream) -> None:
    config = tmp_path / "memlane.yaml"
    config.write_text(f"llm:\n  provider: openai\n  config:\n    base_url: {upstream.url}\n    model: scripted-model\n")
    upstream.queue(Reply.json({"facts": ["Loves tea"]}))
    added = run("--config", str(config), "memories", "add", "I really love tea", "--user", "alice")
    assert [r["memory"] for r in added["results"]] == ["Loves tea"]


def test_errors_are_one_clear_line() -> None:
    result = CliRunner().invoke(cli, ["memories", "get", "missing-id"])
    assert result.exit_code == 1
    assert "NotFoundError: memory 'missing-id' not found" in result.output
    result = CliRunner().invoke(cli, ["memories", "search", "x"])
    assert "ScopeError" in result.output and "needs a scope" in result.output
    result = CliRunner().invoke(cli, ["memories", "list", "--user", "a", "--filters", "{nope"])
    assert result.exit_code == 2 and "not valid JSON" in result.output


def test_help_lists_every_memories_command() -> None:
    result = CliRunner().invoke(cli, ["memories", "--help"])
    for command in ("add", "search", "list", "get", "update", "delete", "history"):
        assert command in result.output


def test_chat_repl_recalls_and_learns(tmp_path: Path, upstream: ScriptedUpstream) -> None:
    from tests.scenarios import client_config, restaurant_llm

    upstream.handler = restaurant_llm
    config = tmp_path / "chat.json"
    config.write_text(json.dumps(client_config(tmp_path / "chat.db", upstream)))
    first = CliRunner().invoke(cli, ["--config", str(config), "chat", "--user", "alice", "--model", "m"],
                               input="I love Indian food but I'm allergic to cheese.\n/exit\n", catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert "assistant> Noted! Here is my suggestion." in first.output
    second = CliRunner().invoke(cli, ["--config", str(config), "chat", "--user", "alice", "--model", "m"],
                                input="Suggest dinner options in San Francisco.\n", catch_exceptions=False)
    assert second.exit_code == 0, second.output
    assert "recalled:" in second.output and "Is allergic to cheese" in second.output


def test_keys_create_list_revoke(isolated_env: Path) -> None:
    runner = CliRunner()
    created = runner.invoke(cli, ["keys", "create", "--project", "acme"], catch_exceptions=False)
    assert created.exit_code == 0
    key = created.stdout.strip().splitlines()[0]
    assert key.startswith("ml-")
    listed = runner.invoke(cli, ["keys", "list"]).output
    assert "acme" in listed and "active" in listed and key not in listed, "the key itself is never shown again"
    key_id = listed.split()[0]
    assert runner.invoke(cli, ["keys", "revoke", key_id]).exit_code == 0
    assert "revoked" in runner.invoke(cli, ["keys", "list"]).output
    assert runner.invoke(cli, ["keys", "revoke", key_id]).exit_code == 1
    bad = runner.invoke(cli, ["keys", "create", "--project", "no spaces"])
    assert bad.exit_code == 1 and "project name" in bad.output


def test_serve_refuses_a_public_address_without_keys(isolated_env: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "refusing to serve on 0.0.0.0 without API keys" in result.output


def test_the_first_key_does_not_strand_earlier_memories(isolated_env: Path) -> None:
    """Data written before any key stays reachable: `keys create` defaults to the default project,
    and a named project's key says where its (separate) memories live; `--project` reaches them."""
    from click.testing import CliRunner

    from memlane.server.keys import KeyStore

    run("memories", "add", "Is allergic to cheese", "--user", "alice", "--no-infer")
    created = CliRunner().invoke(cli, ["keys", "create"], catch_exceptions=False)
    assert created.exit_code == 0 and "project default" in created.output and str(isolated_env / "memlane.db") in created.output
    assert KeyStore(isolated_env / "keys.db").list()[0].project == "default"
    named = CliRunner().invoke(cli, ["keys", "create", "--project", "acme"], catch_exceptions=False)
    assert str(isolated_env / "memlane.acme.db") in named.output
    run("memories", "add", "Likes tea", "--user", "alice", "--no-infer", "--project", "acme")
    assert [r["memory"] for r in run("memories", "list", "--user", "alice", "--project", "acme")["results"]] == ["Likes tea"]
    assert [r["memory"] for r in run("memories", "list", "--user", "alice")["results"]] == ["Is allergic to cheese"]


def test_serve_start_up_failures_are_one_line_and_a_non_zero_exit(tmp_path: Path, isolated_env: Path) -> None:
    """The seed's Qdrant config with nothing listening, and a port already taken: one clear line
    each, no traceback, no "serving on" banner first."""
    import os
    import socket
    import subprocess
    import sys

    config = tmp_path / "qdrant.json"
    config.write_text(json.dumps({"vector_store": {"provider": "qdrant", "config": {"host": "127.0.0.1", "port": 9, "timeout": 2}}}))
    done = subprocess.run([sys.executable, "-m", "memlane.cli", "--config", str(config), "serve", "--port", "0"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "MEMLANE_HOME": str(isolated_env)})
    assert done.returncode != 0 and "Traceback" not in done.stderr and "serving on" not in done.stdout
    assert "cannot reach Qdrant at" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "memlane.cli", "serve", "--port", str(port)], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "MEMLANE_HOME": str(isolated_env)})
    assert done.returncode != 0 and "Traceback" not in done.stderr and "serving on" not in done.stdout
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_banner_comes_after_the_port_is_bound_and_the_store_is_open(tmp_path: Path, isolated_env: Path, workers: str) -> None:
    """Whoever reads "serving on" can connect at once: the port is listening before it is printed."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "memlane.cli", "serve", "--port", str(port), "--workers", workers],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "MEMLANE_HOME": str(isolated_env)})
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert f"serving on http://127.0.0.1:{port}/v1" in banner
        socket.create_connection(("127.0.0.1", port), timeout=1).close()  # no retry: it listens already
        assert f"inspector: http://127.0.0.1:{port}/ui" in proc.stdout.readline()
        assert (isolated_env / "memlane.db").exists()
        # one keep-alive client, request after request: answers come at once, not after the
        # client's delayed ACK (~40 ms each while Nagle was left on for the socket bound here)
        import statistics
        import time

        import httpx

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            # the first answer waits, queued on the listening socket, for the server processes to
            # import and start: seconds with --workers 2 on a loaded 2-core machine (30 s measured
            # under 10 busy processes), so it gets its own long timeout; the connection itself was
            # checked above, without waiting
            client.get("/healthz", timeout=180).raise_for_status()
            spent = []
            for _ in range(20):
                started = time.perf_counter()
                client.get("/healthz").raise_for_status()
                spent.append(time.perf_counter() - started)
        assert statistics.median(spent) < 0.02, f"median {statistics.median(spent) * 1000:.1f} ms per keep-alive request"
    finally:
        proc.terminate()
        proc.wait(30)


def test_the_served_socket_turns_nagle_off_for_every_connection() -> None:
    """asyncio sets TCP_NODELAY only on accepted sockets whose protocol is IPPROTO_TCP."""
    import asyncio
    import socket

    from memlane.cli.serve import listening_socket

    async def accepted_nodelay() -> int:
        found: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                found.set_result(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

        server = await asyncio.get_running_loop().create_server(Probe, sock=listening_socket("127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await asyncio.wait_for(found, 5)
        finally:
            writer.close()
            server.close()

    assert asyncio.run(accepted_nodelay()) == 1


def test_people_get_tables_programs_get_json(isolated_env: Path) -> None:
    """A terminal gets rich tables (forced here with --table); piped output stays JSON, so
    scripts keep working; --json forces it."""
    added = run("memories", "add", "Is allergic to cheese", "--user", "alice", "--no-infer", "--timestamp", "2023-05-08T10:00:00Z")
    memory_id = added["results"][0]["id"]  # type: ignore[index]
    run("memories", "update", memory_id, "Is severely allergic to cheese")

    def table(*args: str) -> str:
        result = CliRunner(env={"COLUMNS": "200"}).invoke(cli, [*args, "--table"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    listed = table("memories", "list", "--user", "alice")
    assert "Is severely allergic to cheese" in listed and memory_id in listed and "user=alice" in listed and "┃" in listed
    assert "score" in table("memories", "search", "cheese", "--user", "alice")
    assert "2023-05-08T10:00:00" in table("memories", "show", memory_id)
    history = table("memories", "history", memory_id)
    assert "UPDATE" in history and "Is allergic to cheese -> Is severely allergic to cheese" in history
    assert run("memories", "list", "--user", "alice", "--json")["results"][0]["id"] == memory_id  # type: ignore[index]


def test_status_says_what_memlane_holds_and_does(isolated_env: Path) -> None:
    run("memories", "add", "Likes tea", "--user", "alice", "--no-infer")
    run("memories", "add", "Likes coffee", "--user", "bob", "--agent", "barista", "--no-infer")
    status = run("status")
    assert status["project"] == "default" and status["memories"] == 2  # type: ignore[index]
    assert status["scopes"] == {"users": 2, "agents": 1, "runs": 0}  # type: ignore[index]
    assert status["store"] == f"sqlite: {isolated_env / 'memlane.db'}" and "static" in status["embedder"]  # type: ignore[index]
    assert status["outbox"]["pending"] == 0 and status["last_learning_error"] == "none"  # type: ignore[index]
    assert status["changed_today"] == {"ADD": 2, "UPDATE": 0, "DELETE": 0}  # type: ignore[index]
    assert run("status", "--project", "acme")["memories"] == 0  # type: ignore[index]
    shown = CliRunner(env={"COLUMNS": "200"}).invoke(cli, ["status", "--table"], catch_exceptions=False).output
    assert "memlane status" in shown and "users 2, agents 1, runs 0" in shown


def test_a_port_out_of_range_is_a_usage_error_not_a_traceback() -> None:
    result = CliRunner().invoke(cli, ["serve", "--port", "99999"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "Invalid value for '--port'" in result.output and "0<=x<=65535" in result.output, result.output


def test_chat_with_an_unreachable_model_server_is_one_line_naming_it(tmp_path: Path, upstream: ScriptedUpstream) -> None:
    from tests.scenarios import client_config

    config = tmp_path / "chat.json"
    config.write_text(json.dumps(client_config(tmp_path / "chat.db", upstream, upstream={"base_url": "http://127.0.0.1:9/v1", "max_retries": 0})))
    result = CliRunner().invoke(cli, ["--config", str(config), "chat", "--user", "alice", "--model", "m"], input="hello\n")
    assert result.exit_code == 1 and result.exception is not None and isinstance(result.exception, SystemExit)
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert "APIConnectionError" in line and "the model server at http://127.0.0.1:9/v1 (from upstream.base_url) cannot be reached" in line
    assert "Traceback" not in result.output


def test_scope_errors_name_the_cli_options() -> None:
    result = CliRunner().invoke(cli, ["memories", "search", "x"])
    assert result.exit_code == 1
    assert "search needs a scope: pass --user, --agent or --run" in result.output, result.output
    assert "keyword arguments" not in result.output and "user_id" not in result.output.replace('{"user_id"', "")
    result = CliRunner().invoke(cli, ["memories", "list", "--user", ""])
    assert "--user must not be empty" in result.output, result.output


def test_demo_says_which_embedder_it_loads_and_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = CliRunner().invoke(cli, ["demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert "embedder: memlane-static-minilm-l6-v2" in first and "removed when the demo ends" in first
    assert "MiniLM embedder" not in result.output and "Is allergic to cheese" in result.output
    assert list(tmp_path.iterdir()) == [], "the throwaway store is gone"
    kept = tmp_path / "kept"
    CliRunner().invoke(cli, ["demo", "--keep", str(kept)], catch_exceptions=False)
    assert (kept / "demo.db").exists()
