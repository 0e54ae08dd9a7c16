"""Moving memories between stores: export → import across backends compares equal; a mem0
export imports too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from memlane import Memory
from memlane.cli import cli


def write_config(path: Path, vector_store: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"vector_store": vector_store}))
    return path


def snapshot(memory: Memory, users: list[str]) -> list[dict[str, Any]]:
    out = []
    for user in users:
        for record in memory.get_all(user_id=user)["results"]:
            out.append({**record, "history": memory.history(record["id"])})
    return sorted(out, key=lambda r: r["id"])


def store_for(kind: str, tmp_path: Path, pg_uri: str, name: str) -> dict[str, Any]:
    if kind == "sqlite":
        return {"provider": "sqlite", "config": {"path": str(tmp_path / f"{name}.db")}}
    if kind == "qdrant":
        return {"provider": "qdrant", "config": {"path": str(tmp_path / f"{name}.qdrant")}}
    if kind == "qdrant-pg":
        return {"provider": "qdrant", "config": {"path": str(tmp_path / f"{name}.qdrant"),
                                                 "records": {"provider": "postgres", "config": {"dsn": pg_uri, "schema_name": f"export_{name.replace('-', '_')}"}}}}
    return {"provider": "pgvector", "config": {"dsn": pg_uri, "schema_name": f"export_{name.replace('-', '_')}"}}


@pytest.mark.parametrize("source_kind,target", [("sqlite", "sqlite"), ("sqlite", "pgvector"), ("pgvector", "qdrant"), ("qdrant", "qdrant-pg"), ("qdrant-pg", "sqlite")])
def test_round_trip_between_backends(tmp_path: Path, source_kind: str, target: str, pg_uri: str) -> None:
    """sqlite → pgvector → qdrant → qdrant on PostgreSQL → sqlite: every memory, its metadata and its history."""
    source_store = store_for(source_kind, tmp_path, pg_uri, f"source_{source_kind}_{target}")
    target_store = store_for(target, tmp_path, pg_uri, f"target_{source_kind}_{target}")
    with Memory({"vector_store": source_store}) as source:
        ids = [r["id"] for r in source.add(["Is allergic to cheese", "Loves Indian food"], user_id="alice", infer=False,
                                           metadata={"category": "food", "priority": 2})["results"]]
        source.update(ids[0], "Is severely allergic to cheese")
        source.add("Plays chess", user_id="bob", run_id="r1", infer=False)
        expected = snapshot(source, ["alice", "bob"])
    runner = CliRunner()
    dump = tmp_path / "all.jsonl"
    out = runner.invoke(cli, ["--config", str(write_config(tmp_path / "s.json", source_store)), "memories", "export", "-o", str(dump)])
    assert out.exit_code == 0, out.output
    assert len(dump.read_text().splitlines()) == 3
    target_config = str(write_config(tmp_path / "t.json", target_store))
    first = runner.invoke(cli, ["--config", target_config, "memories", "import", str(dump)])
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout[first.stdout.index("{"):]) == {"imported": 3, "skipped": 0}
    again = runner.invoke(cli, ["--config", target_config, "memories", "import", str(dump)])
    assert json.loads(again.stdout[again.stdout.index("{"):]) == {"imported": 0, "skipped": 3}
    with Memory({"vector_store": target_store}) as moved:
        assert snapshot(moved, ["alice", "bob"]) == expected
        assert moved.search("cheese", user_id="alice", limit=1)["results"][0]["id"] == ids[0]


def test_import_of_a_mem0_export(tmp_path: Path) -> None:
    mem0_records = {"results": [
        {"id": "3c9a2d1e-0000-4000-8000-000000000001", "memory": "Is allergic to cheese", "hash": "x", "metadata": {"source": "mem0"},
         "created_at": "2025-01-02T03:04:05-08:00", "updated_at": None, "user_id": "alice"},
        {"id": "3c9a2d1e-0000-4000-8000-000000000002", "memory": "Prefers window seats", "user_id": "alice", "agent_id": "travel"},
    ]}
    source = tmp_path / "mem0.json"
    source.write_text(json.dumps(mem0_records))
    store = {"provider": "sqlite", "config": {"path": str(tmp_path / "m.db")}}
    result = CliRunner().invoke(cli, ["--config", str(write_config(tmp_path / "c.json", store)), "memories", "import", str(source)])
    assert result.exit_code == 0, result.output
    with Memory({"vector_store": store}) as memory:
        got = {r["memory"]: r for r in memory.get_all(user_id="alice")["results"]}
        assert set(got) == {"Is allergic to cheese", "Prefers window seats"}
        assert got["Is allergic to cheese"]["metadata"] == {"source": "mem0"}
        assert got["Prefers window seats"]["agent_id"] == "travel"


def test_bad_import_lines_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"memory": "x", "user_id": "u"}\n{nope\n')
    result = CliRunner().invoke(cli, ["memories", "import", str(bad)])
    assert result.exit_code == 1 and "line 2 is not valid JSON" in result.output
    noscope = tmp_path / "noscope.jsonl"
    noscope.write_text('{"memory": "x"}\n')
    result = CliRunner().invoke(cli, ["memories", "import", str(noscope)])
    assert result.exit_code == 1 and "needs at least one of user_id" in result.output
