"""The ``memlane`` command line. Groups are nouns, subcommands verbs; one module per group."""

from __future__ import annotations

import sys
from typing import Any

import click

from memlane import __version__
from memlane.cli.chat import chat
from memlane.cli.demo import demo
from memlane.cli.memories import memories
from memlane.cli.models import models
from memlane.cli.outbox import outbox
from memlane.cli.project import project
from memlane.cli.serve import keys, learn, serve
from memlane.cli.status import status
from memlane.cli.webhooks import webhooks


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="memlane")
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), envvar="MEMLANE_CONFIG",
    help="Config file (YAML, JSON or TOML); default: the embedded store under MEMLANE_HOME.",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """memlane: long-term memory for OpenAI-style chat applications.

    \b
    Examples:
      memlane memories add "I am allergic to cheese" --user alice --no-infer
      memlane memories search "dinner ideas" --user alice
    """
    ctx.obj = {"config_path": config_path}


cli.add_command(memories)
cli.add_command(chat)
cli.add_command(demo)
cli.add_command(serve)
cli.add_command(keys)
cli.add_command(learn)
cli.add_command(outbox)
cli.add_command(project)
cli.add_command(models)
cli.add_command(status)
cli.add_command(webhooks)


def main(argv: list[str] | None = None) -> Any:
    return cli.main(args=argv, prog_name="memlane")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
