"""``memlane demo``: a one-minute tour of the engine on a throwaway store, removed afterwards
(``--keep DIR`` keeps it)."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import click

from memlane.cli.common import user_errors


@click.command()
@click.option("--keep", type=click.Path(file_okay=False), help="keep the demo store in this folder")
@user_errors
def demo(keep: str | None) -> None:
    """Store the seed's restaurant facts for alice and recall them for a dinner request."""
    from memlane import Memory

    with contextlib.ExitStack() as cleanup:
        folder = Path(keep) if keep else Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="memlane-demo-")))
        folder.mkdir(parents=True, exist_ok=True)
        # the store closes before its folder goes
        memory = cleanup.enter_context(Memory({"vector_store": {"provider": "sqlite", "config": {"path": str(folder / "demo.db")}}}))
        kept = "kept" if keep else "removed when the demo ends"
        click.echo(f"store: {folder / 'demo.db'} ({kept}); embedder: {memory.embedder.model_id}")
        tour(memory)


def tour(memory: Any) -> None:
    """Remember, recall, keep scopes apart, update with history."""
    facts = ["Is allergic to cheese", "Loves Indian food", "Lives in San Francisco"]
    memory.add([{"role": "user", "content": f} for f in facts], user_id="alice", infer=False, metadata={"category": "food"})
    memory.add("Prefers window seats on flights", user_id="bob", infer=False)
    query = "Suggest dinner options in San Francisco."
    click.echo(f"\nalice asks: {query!r}\nrecalled:")
    for hit in memory.search(query, user_id="alice", limit=3)["results"]:
        click.echo(f"  {hit['score']:.3f}  {hit['memory']}")
    click.echo(f"bob's memories for the same request: {[h['memory'] for h in memory.search(query, user_id='bob', threshold=0.3)['results']]}")
    first = memory.get_all(user_id="alice")["results"][-1]
    memory.update(first["id"], "Is severely allergic to cheese")
    click.echo(f"\nhistory of {first['id']}:")
    for event in memory.history(first["id"]):
        click.echo(f"  {event['event']:6}  {event['old_memory']!r} -> {event['new_memory']!r}")
