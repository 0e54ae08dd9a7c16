"""``memlane outbox``: dead exchanges are listed with their error and put back by hand, per project."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from memlane import Memory
from memlane.cli import cli
from memlane.config import load_config
from memlane.server.projects import project_config


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_dead_exchanges_are_listed_and_requeued_per_project(isolated_env: Path) -> None:
    with Memory(project_config(load_config(None), "acme")) as memory:
        item_id = memory.store.outbox.put({"scope": {"user_id": "alice"}, "messages": [{"role": "user", "content": "hi"}]})
        memory.store.outbox.retry(item_id, "NotFoundError: the model `gpt-x` does not exist", 0.0, dead=True)
    assert json.loads(invoke("outbox", "status"))["dead"] == 0, "the default project has none"
    status = json.loads(invoke("outbox", "status", "--project", "acme"))
    assert (status["dead"], status["pending"]) == (1, 0)
    listed = invoke("outbox", "dead", "--project", "acme")
    assert item_id in listed and "user_id=alice" in listed and "does not exist" in listed
    (item,) = json.loads(invoke("outbox", "dead", "--project", "acme", "--json"))
    assert item["payload"]["scope"] == {"user_id": "alice"}
    assert "re-queued 1 exchange;" in invoke("outbox", "requeue", item_id, "--project", "acme")
    status = json.loads(invoke("outbox", "status", "--project", "acme"))
    assert (status["dead"], status["pending"]) == (0, 1)
