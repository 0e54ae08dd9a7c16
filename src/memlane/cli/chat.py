"""``memlane chat``: an interactive conversation through the drop-in client, to see recall and
learning at work."""

from __future__ import annotations

from typing import Any

import click

from memlane.cli.common import user_errors


@click.command()
@click.option("--user", "-u", "user_id", help="user_id scope (without any scope nothing is remembered)")
@click.option("--agent", "-a", "agent_id", help="agent_id scope")
@click.option("--run", "-r", "run_id", help="run_id scope")
@click.option("--model", "-m", required=True, envvar="MEMLANE_CHAT_MODEL", help="the upstream model")
@click.option("--system", "-s", default=None, help="a system prompt")
@click.option("--show-memories/--hide-memories", default=True, show_default=True, help="print what was recalled for each turn")
@click.pass_context
@user_errors
def chat(ctx: click.Context, user_id: str | None, agent_id: str | None, run_id: str | None, model: str,
         system: str | None, show_memories: bool) -> None:
    """Chat with the upstream model through memlane (Ctrl-D or /exit to quit).

    \b
    The upstream is the config's "upstream" section or OPENAI_BASE_URL / OPENAI_API_KEY.
    Examples:
      memlane chat --user alice --model gpt-4.1-nano
      OPENAI_BASE_URL=http://localhost:11434/v1 memlane chat -u alice -m llama3.2
    """
    from memlane import Memlane

    path = (ctx.obj or {}).get("config_path")
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    with Memlane(config=path) as client:
        click.echo(f"memlane chat — model {model}, scope {user_id or agent_id or run_id or '(none: nothing is remembered)'}")
        while True:
            try:
                line = click.prompt("you", prompt_suffix="> ", default="", show_default=False)
            except (EOFError, click.Abort):
                break
            if line.strip() in ("/exit", "/quit"):
                break
            if not line.strip():
                continue
            messages.append({"role": "user", "content": line})
            stream = client.chat.completions.create(
                messages=messages, model=model, user_id=user_id, agent_id=agent_id, run_id=run_id,
                stream=True, include_memories=show_memories,
            )
            if show_memories and getattr(stream, "metadata", None) and stream.metadata.memories:
                click.secho("  recalled: " + "; ".join(m.memory for m in stream.metadata.memories), dim=True)
            click.echo("assistant> ", nl=False)
            parts = []
            for chunk in stream:
                for choice in chunk.choices:
                    if choice.index == 0 and choice.delta.content:
                        parts.append(choice.delta.content)
                        click.echo(choice.delta.content, nl=False)
            click.echo()
            messages.append({"role": "assistant", "content": "".join(parts)})
        click.echo("saving what was learnt...")
        drained = client.flush(timeout=60)
        if not drained:
            click.echo(f"some exchanges are still queued (they stay in the outbox): {client.outbox_status()}")
