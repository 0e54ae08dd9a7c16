"""``memlane webhooks``: a project's webhooks, their deliveries with each attempt, and sending
dead ones again, from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from memlane import Memory
from memlane.cli import cli
from memlane.config import load_config
from memlane.server.projects import project_config


def invoke(*args: str) -> str:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(cli, list(args), catch_exceptions=False)  # tables as wide as they need
    assert result.exit_code == 0, result.output
    return result.output


def test_webhooks_and_their_deliveries_are_listed_shown_and_requeued(isolated_env: Path) -> None:
    with Memory(project_config(load_config(None), "acme")) as memory:
        hook = memory.create_webhook("https://93.184.216.34/hook", "crm", ["memory_add"])
        memory.add("Likes tea", user_id="alice", infer=False)
        memory.webhooks.settings = memory.webhooks.settings.model_copy(update={"max_attempts": 1})
        delivery = memory.webhooks.claim("test")
        assert delivery is not None
        memory.webhooks.finish(delivery, status_code=503, error="HTTP 503: busy", duration_ms=12.0)
    assert json.loads(invoke("webhooks", "list", "--json")) == [], "the default project has none"
    (listed,) = json.loads(invoke("webhooks", "list", "--project", "acme", "--json"))
    assert listed["webhook_id"] == hook["webhook_id"] and listed["deliveries"]["dead"] == 1
    table = invoke("webhooks", "list", "--project", "acme", "--table")
    assert "crm" in table and "memory_add" in table
    (row,) = json.loads(invoke("webhooks", "deliveries", "--project", "acme", "--status", "dead", "--json"))
    assert row["id"] == delivery.id and [a["status_code"] for a in row["attempt_log"]] == [503]
    assert "HTTP 503: busy" in invoke("webhooks", "deliveries", hook["webhook_id"], "--project", "acme", "--table")
    shown = invoke("webhooks", "show", delivery.id, "--project", "acme", "--table")
    assert "#1" in shown and "HTTP 503" in shown and '"event_type": "memory_add"' in shown
    assert "re-queued 1 delivery;" in invoke("webhooks", "requeue", "--project", "acme")
    assert json.loads(invoke("webhooks", "show", delivery.id, "--project", "acme", "--json"))["status"] == "pending"
