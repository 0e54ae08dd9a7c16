"""What the CLI shows people: rich tables of memories, one memory, its history, and the store's
status. (Programs get JSON: ``--json``, or any piped output.)"""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table


def _scope(record: dict[str, Any]) -> str:
    return " ".join(f"{k.split('_')[0]}={record[k]}" for k in ("user_id", "agent_id", "run_id") if record.get(k))


def _when(stamp: Any) -> str:
    return str(stamp or "")[:19].replace("T", " ")


def _lifetime(record: dict[str, Any]) -> str:
    """`` (expires 2030-01-31)``, `` (immutable)``: what a row says about a memory's lifetime."""
    notes = ([f"expires {record['expiration_date']}"] if record.get("expiration_date") else []) + \
        (["immutable"] if record.get("immutable") else [])
    return f" ({', '.join(notes)})" if notes else ""


def memories(value: dict[str, Any]) -> Table:
    rows = value.get("results", [])
    scored = any("score" in r for r in rows)
    table = Table(title=f"{len(rows)} memories", title_justify="left", show_lines=False)
    table.add_column("id", style="dim", no_wrap=True, min_width=36)
    if scored:
        table.add_column("score", justify="right")
    table.add_column("memory", overflow="fold")
    table.add_column("scope", style="cyan")
    table.add_column("created (UTC)", no_wrap=True)
    for r in rows:
        cells = [str(r.get("id", ""))]
        if scored:
            cells.append(f"{r.get('score', 0):.3f}")
        cells += [str(r.get("memory", "")) + _lifetime(r), _scope(r), _when(r.get("created_at"))]
        table.add_row(*cells)
    return table


def memory(value: dict[str, Any]) -> Table:
    table = Table(show_header=False, title="memory", title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key in ("id", "memory", "user_id", "agent_id", "run_id", "created_at", "updated_at", "expiration_date", "immutable"):
        if value.get(key):
            table.add_row(key, str(value[key]))
    if value.get("metadata"):
        table.add_row("metadata", json.dumps(value["metadata"], ensure_ascii=False))
    return table


def history(value: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(value)} events, oldest first", title_justify="left")
    table.add_column("when (UTC)", no_wrap=True)
    table.add_column("event", style="bold")
    table.add_column("change", overflow="fold")
    table.add_column("by", style="dim")
    for e in value:
        old, new = e.get("old_memory"), e.get("new_memory")
        change = f"{old} -> {new}" if old and new else str(new or old or "")
        if e.get("reason"):
            change += f" ({e['reason']})"
        table.add_row(_when(e.get("created_at")), str(e.get("event", "")), change, str(e.get("actor_id") or ""))
    return table


def status(value: dict[str, Any]) -> Table:
    table = Table(show_header=False, title="memlane status", title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    for key, shown in value.items():
        if isinstance(shown, dict):
            shown = ", ".join(f"{k} {v}" for k, v in shown.items() if v not in (None, ""))
        table.add_row(key.replace("_", " "), str(shown))
    return table


def render(kind: str, value: Any) -> Table:
    return {"memories": memories, "memory": memory, "history": history, "status": status}[kind](value)
