"""``memlane outbox ...``: what is waiting to be learnt from, what was set aside, and re-queueing."""

from __future__ import annotations

import time
import click

from memlane.cli.common import add_project_option, echo_json, open_memory, user_errors


@click.group()
def outbox() -> None:
    """The learning outbox: exchanges waiting to be learnt from, and dead ones.

    \b
    An exchange that failed outbox.max_attempts times, or failed in a way no retry can fix
    (the memory model does not exist, its key is refused), is set aside as dead: kept with its
    last error until you fix the cause and re-queue it.

    \b
    Examples:
      memlane outbox status
      memlane outbox dead --project acme
      memlane outbox requeue            # every dead exchange
      memlane outbox requeue ITEM_ID
    """


@outbox.command("status")
@click.pass_context
@user_errors
def status(ctx: click.Context) -> None:
    """Counts: pending, in progress, retrying, dead; the oldest item's age and the last error."""
    with open_memory(ctx) as memory:
        echo_json(memory.outbox_status())


@outbox.command("dead")
@click.option("--limit", "-n", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="full items as JSON")
@click.pass_context
@user_errors
def dead(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List dead exchanges with their last error."""
    with open_memory(ctx) as memory:
        items = memory.dead_exchanges(limit)
    if as_json:
        echo_json([{"id": i.id, "attempts": i.attempts, "created_at": i.created_at, "last_error": i.last_error, "payload": i.payload}
                   for i in items])
        return
    if not items:
        click.echo("no dead exchanges")
    for item in items:
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(item.created_at))
        scope = " ".join(f"{k}={v}" for k, v in (item.payload.get("scope") or {}).items())
        click.echo(f"{item.id}  {created}  {scope}  attempts={item.attempts}  {(item.last_error or '')[:120]}")


@outbox.command("requeue")
@click.argument("item_ids", nargs=-1)
@click.pass_context
@user_errors
def requeue(ctx: click.Context, item_ids: tuple[str, ...]) -> None:
    """Put dead exchanges (all, or ITEM_IDS) back in the queue with their attempts reset."""
    with open_memory(ctx) as memory:
        count = memory.requeue(list(item_ids) if item_ids else None)
    click.echo(f"re-queued {count} exchange{'s' if count != 1 else ''}; a running learner (memlane serve, a client) takes them next")


add_project_option(outbox)
