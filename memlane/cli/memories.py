"""``memlane memories ...``: the engine's methods on the configured store."""

from __future__ import annotations

from typing import Any

import click

from memlane.cli.common import echo_json, json_option, open_memory, scope_options, user_errors


@click.group()
def memories() -> None:
    """Add, search, inspect and change memories.

    \b
    Examples:
      memlane memories add "I love Indian food" --user alice --no-infer
      memlane memories search "what should I cook?" --user alice --limit 5
      memlane memories list --user alice --filters '{"category": "food"}'
      memlane memories history MEMORY_ID
    """


@memories.command("add")
@click.argument("text", nargs=-1, required=True)
@scope_options
@click.option("--metadata", "-m", help="metadata JSON stored with each memory")
@click.option("--infer/--no-infer", default=True, show_default=True, help="extract facts with the memory LLM, or store the text verbatim")
@click.pass_context
@user_errors
def add(ctx: click.Context, text: tuple[str, ...], user_id: str | None, agent_id: str | None, run_id: str | None,
        filters: str | None, metadata: str | None, infer: bool) -> None:
    """Remember TEXT (several arguments are several user turns)."""
    messages = [{"role": "user", "content": t} for t in text]
    with open_memory(ctx) as memory:
        echo_json(memory.add(messages, user_id=user_id, agent_id=agent_id, run_id=run_id,
                             filters=json_option(filters, "--filters"), metadata=json_option(metadata, "--metadata"), infer=infer))


@memories.command("search")
@click.argument("query")
@scope_options
@click.option("--limit", "-n", type=int, default=10, show_default=True)
@click.option("--threshold", type=float, default=None, help="minimum score")
@click.pass_context
@user_errors
def search(ctx: click.Context, query: str, user_id: str | None, agent_id: str | None, run_id: str | None,
           filters: str | None, limit: int, threshold: float | None) -> None:
    """Hybrid search for QUERY within a scope."""
    with open_memory(ctx) as memory:
        echo_json(memory.search(query, user_id=user_id, agent_id=agent_id, run_id=run_id,
                                filters=json_option(filters, "--filters"), limit=limit, threshold=threshold))


@memories.command("list")
@scope_options
@click.option("--limit", "-n", type=int, default=100, show_default=True)
@click.pass_context
@user_errors
def list_(ctx: click.Context, user_id: str | None, agent_id: str | None, run_id: str | None, filters: str | None, limit: int) -> None:
    """List a scope's memories, newest first."""
    with open_memory(ctx) as memory:
        echo_json(memory.get_all(user_id=user_id, agent_id=agent_id, run_id=run_id,
                                 filters=json_option(filters, "--filters"), limit=limit))


@memories.command("get")
@click.argument("memory_id")
@click.pass_context
@user_errors
def get(ctx: click.Context, memory_id: str) -> None:
    """Show one memory."""
    with open_memory(ctx) as memory:
        echo_json(memory.get(memory_id))


@memories.command("update")
@click.argument("memory_id")
@click.argument("text")
@click.option("--metadata", "-m", help="replace the metadata with this JSON")
@click.pass_context
@user_errors
def update(ctx: click.Context, memory_id: str, text: str, metadata: str | None) -> None:
    """Change a memory's text (its history keeps the old one)."""
    with open_memory(ctx) as memory:
        echo_json(memory.update(memory_id, text, metadata=json_option(metadata, "--metadata")))


@memories.command("delete")
@click.argument("memory_id", required=False)
@scope_options
@click.option("--all", "all_", is_flag=True, help="delete every memory of the given scope")
@click.pass_context
@user_errors
def delete(ctx: click.Context, memory_id: str | None, user_id: str | None, agent_id: str | None, run_id: str | None,
           filters: str | None, all_: bool) -> None:
    """Delete one memory, or with --all every memory of a scope."""
    with open_memory(ctx) as memory:
        if all_:
            result: Any = memory.delete_all(user_id=user_id, agent_id=agent_id, run_id=run_id, filters=json_option(filters, "--filters"))
        elif memory_id:
            result = memory.delete(memory_id)
        else:
            raise click.UsageError("give a MEMORY_ID, or --all with a scope")
        echo_json(result)


@memories.command("history")
@click.argument("memory_id")
@click.pass_context
@user_errors
def history(ctx: click.Context, memory_id: str) -> None:
    """Every change of one memory, oldest first."""
    with open_memory(ctx) as memory:
        echo_json(memory.history(memory_id))
