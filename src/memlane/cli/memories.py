"""``memlane memories ...``: the engine's methods on the configured store."""

from __future__ import annotations

import sys
from typing import Any

import click

from memlane.cli.common import add_project_option, echo_json, json_option, open_memory, output_options, scope_options, show, user_errors


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
@click.option("--timestamp", help="when the conversation happened: ISO 8601 (2023-05-08T13:56:00Z) or Unix seconds; default now")
@click.option("--expires", "expiration_date", help="not recalled after this date (YYYY-MM-DD, through that day UTC) or ISO 8601 time")
@click.option("--immutable", is_flag=True, help="never updated or deleted by later learning (a contradicting fact is added beside)")
@click.pass_context
@user_errors
def add(ctx: click.Context, text: tuple[str, ...], user_id: str | None, agent_id: str | None, run_id: str | None,
        filters: str | None, metadata: str | None, infer: bool, timestamp: str | None, expiration_date: str | None,
        immutable: bool) -> None:
    """Remember TEXT (several arguments are several user turns)."""
    messages = [{"role": "user", "content": t} for t in text]
    when: str | float | None = timestamp
    if timestamp is not None and timestamp.replace(".", "", 1).isdigit():
        when = float(timestamp)
    with open_memory(ctx) as memory:
        echo_json(memory.add(messages, user_id=user_id, agent_id=agent_id, run_id=run_id, timestamp=when,
                             filters=json_option(filters, "--filters"), metadata=json_option(metadata, "--metadata"), infer=infer,
                             expiration_date=expiration_date, immutable=immutable))


@memories.command("search")
@click.argument("query")
@scope_options
@click.option("--limit", "-n", type=int, default=10, show_default=True)
@click.option("--threshold", type=float, default=None, help="minimum score")
@click.option("--show-expired", is_flag=True, help="expired memories too")
@output_options
@click.pass_context
@user_errors
def search(ctx: click.Context, query: str, user_id: str | None, agent_id: str | None, run_id: str | None,
           filters: str | None, limit: int, threshold: float | None, show_expired: bool, as_json: bool | None) -> None:
    """Hybrid search for QUERY within a scope, best first, with scores."""
    with open_memory(ctx) as memory:
        show(memory.search(query, user_id=user_id, agent_id=agent_id, run_id=run_id, filters=json_option(filters, "--filters"),
                           limit=limit, threshold=threshold, show_expired=show_expired), "memories", as_json)


@memories.command("list")
@scope_options
@click.option("--limit", "-n", type=int, default=100, show_default=True)
@click.option("--show-expired", is_flag=True, help="expired memories too")
@output_options
@click.pass_context
@user_errors
def list_(ctx: click.Context, user_id: str | None, agent_id: str | None, run_id: str | None, filters: str | None, limit: int,
          show_expired: bool, as_json: bool | None) -> None:
    """List a scope's memories, newest first."""
    with open_memory(ctx) as memory:
        show(memory.get_all(user_id=user_id, agent_id=agent_id, run_id=run_id, filters=json_option(filters, "--filters"),
                            limit=limit, show_expired=show_expired), "memories", as_json)


@memories.command("show")
@click.argument("memory_id")
@output_options
@click.pass_context
@user_errors
def show_one(ctx: click.Context, memory_id: str, as_json: bool | None) -> None:
    """Show one memory: its text, scope, metadata and dates (`memlane memories history ID`: its changes)."""
    with open_memory(ctx) as memory:
        show(memory.get(memory_id), "memory", as_json)


memories.add_command(show_one, "get")  # mem0's name for it


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
    """Delete one memory, or with --all every memory of a scope (one transaction, with a progress bar)."""
    from tqdm import tqdm

    with open_memory(ctx) as memory:
        if all_:
            with tqdm(desc="deleting", unit=" memories", file=sys.stderr, disable=not sys.stderr.isatty()) as bar:
                def progress(done: int, total: int) -> None:
                    bar.total = total
                    bar.update(done - bar.n)

                result: Any = memory.delete_all(user_id=user_id, agent_id=agent_id, run_id=run_id,
                                                filters=json_option(filters, "--filters"), progress=progress)
        elif memory_id:
            result = memory.delete(memory_id)
        else:
            raise click.UsageError("give a MEMORY_ID, or --all with a scope")
        echo_json(result)


@memories.command("history")
@click.argument("memory_id")
@output_options
@click.pass_context
@user_errors
def history(ctx: click.Context, memory_id: str, as_json: bool | None) -> None:
    """Every change of one memory, oldest first: ADD, UPDATE old -> new, DELETE."""
    with open_memory(ctx) as memory:
        show(memory.history(memory_id), "history", as_json)


@memories.command("export")
@scope_options
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default="-", show_default=True,
              help="JSONL file to write ('-' is standard output)")
@click.pass_context
@user_errors
def export(ctx: click.Context, user_id: str | None, agent_id: str | None, run_id: str | None, filters: str | None, output: str) -> None:
    """Write memories (of a scope, or all) with their history as JSONL, one memory per line.

    \b
    Move a store to another backend:
      memlane --config sqlite.yaml memories export -o all.jsonl
      memlane --config pgvector.yaml memories import all.jsonl
    """
    import json as _json

    from tqdm import tqdm

    with open_memory(ctx) as memory, click.open_file(output, "w", encoding="utf-8") as out:
        records = memory.export(user_id=user_id, agent_id=agent_id, run_id=run_id, filters=json_option(filters, "--filters"))
        count = 0
        for record in tqdm(records, desc="exporting", unit=" memories", disable=output == "-" or not sys.stderr.isatty(), file=sys.stderr):
            out.write(_json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    click.echo(f"exported {count} memories", err=True)


@memories.command("import")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--batch-size", default=1000, show_default=True, help="memories embedded and written per transaction")
@click.pass_context
@user_errors
def import_(ctx: click.Context, source: str, batch_size: int) -> None:
    """Load memories from JSONL written by `memories export`, or from a mem0 export (the records
    mem0's get_all returns, as JSONL or as one JSON document with a "results" list). Texts are
    re-embedded with this store's embedder; ids, scopes, metadata, timestamps and history are kept;
    memories already present are skipped, so an import can be re-run."""
    from tqdm import tqdm

    with click.open_file(source, "r", encoding="utf-8") as f:
        records = read_records(f.read(), source)
    with open_memory(ctx) as memory:
        counts = {"imported": 0, "skipped": 0}
        with memory.bulk_loading(len(records)), tqdm(total=len(records), desc="importing", unit=" memories", file=sys.stderr,
                                                       disable=not sys.stderr.isatty()) as bar:
            for start in range(0, len(records), batch_size):
                chunk = records[start : start + batch_size]
                done = memory.import_records(chunk, batch_size=batch_size)
                counts = {k: counts[k] + done[k] for k in counts}
                bar.update(len(chunk))
    echo_json(counts)


def read_records(text: str, source: str) -> list[dict[str, Any]]:
    """JSONL, or one JSON document: a list of records or mem0's {"results": [...]}."""
    import json as _json

    stripped = text.strip()
    if not stripped:
        return []
    try:  # one JSON document (mem0 exports); otherwise JSON lines
        document = _json.loads(stripped)
    except _json.JSONDecodeError:
        document = None
    if document is not None:
        if isinstance(document, dict) and isinstance(document.get("results"), list):
            return list(document["results"])
        if isinstance(document, list):
            return document
        if isinstance(document, dict) and "memory" in document:
            return [document]
    records = []
    for number, line in enumerate(stripped.splitlines(), start=1):
        if line.strip():
            try:
                records.append(_json.loads(line))
            except _json.JSONDecodeError as exc:
                raise click.ClickException(f"{source}: line {number} is not valid JSON: {exc.msg}") from None
    return records


add_project_option(memories)
