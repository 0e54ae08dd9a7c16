"""``memlane project ...``: a project's custom instructions and categories for extraction."""

from __future__ import annotations

import json

import click

from memlane.cli.common import add_project_option, echo_json, open_memory, user_errors


@click.group()
def project() -> None:
    """What learning keeps and how it files facts, for one project (kept in its store).

    \b
    Instructions are in your words; facts the memory model marks as excluded by them are not
    learnt. Categories are names, or JSON objects {"name": "what it holds"}; each learnt
    memory carries the ones that fit it as metadata.categories.

    \b
    Examples:
      memlane project show
      memlane project set --instructions "Never store health information."
      memlane project set --category food --category travel --project acme
      memlane project set --categories '[{"food": "diet and allergies"}]'
      memlane project set --categories '[]'      # back to the config's
    """


@project.command("show")
@click.pass_context
@user_errors
def show(ctx: click.Context) -> None:
    """The project's custom_instructions and custom_categories (its own, else the config's)."""
    with open_memory(ctx) as memory:
        echo_json(memory.get_project())


@project.command("set")
@click.option("--instructions", default=None, help="what to learn and what never to; '' clears them")
@click.option("--category", "names", multiple=True, help="a category name (repeatable)")
@click.option("--categories", "as_json", default=None, help="the categories as a JSON list")
@click.pass_context
@user_errors
def set_project(ctx: click.Context, instructions: str | None, names: tuple[str, ...], as_json: str | None) -> None:
    """Set the project's instructions and/or categories for every later extraction."""
    categories = None
    if as_json is not None:
        try:
            categories = json.loads(as_json)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc.msg}", param_hint="--categories") from None
    elif names:
        categories = list(names)
    with open_memory(ctx) as memory:
        echo_json(memory.update_project(custom_instructions=instructions, custom_categories=categories))


add_project_option(project)
