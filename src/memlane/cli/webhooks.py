"""``memlane webhooks ...``: a project's webhooks, their deliveries and each attempt, and
sending dead deliveries again. (Webhooks are made through the API: mem0's ``create_webhook``,
or ``POST /v1/webhooks``; ``memlane serve`` delivers them.)"""

from __future__ import annotations

from typing import Any

import click

from memlane.cli.common import add_project_option, echo_json, open_memory, output_options, user_errors, wants_json


@click.group()
def webhooks() -> None:
    """A project's webhooks for memory add / update / delete, and their deliveries.

    \b
    Each delivery is a POST signed with the webhook's secret
    (X-Memlane-Signature: sha256=<HMAC-SHA256 of the raw body>), retried with
    exponential backoff (server.webhooks) and set aside as dead after
    server.webhooks.max_attempts; `memlane serve` sends them.

    \b
    Examples:
      memlane webhooks list --project acme
      memlane webhooks deliveries --status dead
      memlane webhooks show DELIVERY_ID
      memlane webhooks requeue            # every dead delivery
    """


def _when(stamp: Any) -> str:
    return str(stamp or "")[:19].replace("T", " ")


@webhooks.command("list")
@output_options
@click.pass_context
@user_errors
def list_webhooks(ctx: click.Context, as_json: bool | None) -> None:
    """Every webhook of the project, with its deliveries counted by status."""
    with open_memory(ctx) as memory:
        hooks = memory.get_webhooks()
    if wants_json(as_json):
        echo_json(hooks)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(hooks)} webhooks", title_justify="left")
    for column in ("id", "name", "url", "events", "active", "pending", "delivered", "dead"):
        table.add_column(column, justify="right" if column in ("pending", "delivered", "dead") else "left",
                         overflow="fold" if column == "url" else "ellipsis")
    for h in hooks:
        counts = h["deliveries"]
        table.add_row(h["webhook_id"], h["name"], h["url"], ", ".join(h["event_types"]), "yes" if h["is_active"] else "no",
                      str(counts["pending"]), str(counts["delivered"]), str(counts["dead"]))
    Console(soft_wrap=False).print(table)


@webhooks.command("deliveries")
@click.argument("webhook_id", required=False)
@click.option("--status", type=click.Choice(["pending", "delivered", "dead"]), help="only deliveries in this state")
@click.option("--limit", "-n", type=int, default=50, show_default=True)
@output_options
@click.pass_context
@user_errors
def deliveries(ctx: click.Context, webhook_id: str | None, status: str | None, limit: int, as_json: bool | None) -> None:
    """Deliveries (of WEBHOOK_ID, or of every webhook), newest first, with their attempts."""
    with open_memory(ctx) as memory:
        rows = memory.webhook_deliveries(webhook_id, status=status, limit=limit)
    if wants_json(as_json):
        echo_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} deliveries, newest first", title_justify="left")
    for column in ("id", "queued (UTC)", "event", "memory", "status", "attempts", "last answer"):
        table.add_column(column, overflow="fold" if column in ("memory", "last answer") else "ellipsis",
                         no_wrap=column in ("id", "queued (UTC)"))
    for d in rows:
        answer = " ".join(p for p in (f"HTTP {d['last_status']}" if d["last_status"] else "", d["last_error"] or "") if p)
        table.add_row(d["id"], _when(d["created_at"]), d["event"], d["payload"]["event_details"]["data"]["memory"], d["status"],
                      str(d["attempts"]), answer)
    Console(soft_wrap=False).print(table)


@webhooks.command("show")
@click.argument("delivery_id")
@output_options
@click.pass_context
@user_errors
def show_delivery(ctx: click.Context, delivery_id: str, as_json: bool | None) -> None:
    """One delivery: its state, body and every attempt (status code or error, milliseconds)."""
    with open_memory(ctx) as memory:
        found = memory.webhooks.delivery(delivery_id)
    if wants_json(as_json):
        echo_json(found)
        return
    click.echo(f"{found['id']}  {found['event']}  {found['status']}  attempts={found['attempts']}  webhook={found['webhook_id']}")
    for a in found["attempt_log"]:
        answer = f"HTTP {a['status_code']}" if a["status_code"] else ""
        click.echo(f"  #{a['attempt']}  {_when(a['at'])}  {answer} {a['error'] or ''}  {a['duration_ms'] or 0:.0f} ms".rstrip())
    if found["status"] == "pending" and found["next_attempt_at"]:
        click.echo(f"  next attempt {_when(found['next_attempt_at'])} UTC")
    echo_json(found["payload"])


@webhooks.command("requeue")
@click.argument("delivery_ids", nargs=-1)
@click.pass_context
@user_errors
def requeue(ctx: click.Context, delivery_ids: tuple[str, ...]) -> None:
    """Send dead deliveries (all, or DELIVERY_IDS) again, their attempts counted from zero."""
    with open_memory(ctx) as memory:
        count = memory.webhooks.requeue(list(delivery_ids) if delivery_ids else None)
    click.echo(f"re-queued {count} deliver{'ies' if count != 1 else 'y'}; a running `memlane serve` sends them next")


add_project_option(webhooks)
