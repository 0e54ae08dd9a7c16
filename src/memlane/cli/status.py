"""``memlane status``: what memlane knows and does, at a glance."""

from __future__ import annotations

from typing import Any

import click

from memlane.cli.common import open_memory, output_options, project_option, show, user_errors


@click.command()
@output_options
@click.pass_context
@user_errors
def status(ctx: click.Context, as_json: bool | None) -> None:
    """The store, its embedder, how many memories and scopes it holds, and the learning outbox
    (waiting, retrying, set aside, the last error).

    \b
    Examples:
      memlane status
      memlane status --project acme --json
    """
    from memlane.config import load_config
    from memlane.server.projects import describe_storage

    obj = ctx.find_root().obj or {}
    project = obj.get("project") or "default"
    with open_memory(ctx) as memory:
        held = memory.status()
        outbox = held["outbox"]
        value: dict[str, Any] = {
            "project": project,
            "store": f"{memory.config.vector_store.provider}: {describe_storage(load_config(obj.get('config_path')), project)}",
            "embedder": held["embedder"],
            "memories": held["memories"],
            "scopes": held["scopes"],
            "outbox": {k: outbox.get(k) for k in ("pending", "in_progress", "retrying", "dead", "oldest_age_seconds")},
            "last_learning_error": outbox.get("last_error") or "none",
            "changed_today": held["changes_today"],
        }
    show(value, "status", as_json)


project_option(status)
