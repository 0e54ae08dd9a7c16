"""Pieces every command group shares: opening the engine, scope options, JSON output, errors."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sys
from typing import Any, Callable

import click

from memlane.errors import MemlaneError, ScopeError


def open_memory(ctx: click.Context) -> Any:
    """The engine on the configured store, or on a project's store (``--project``), the one the
    server gives that project's keys."""
    from memlane import Memory
    from memlane.config import load_config
    from memlane.server.projects import project_config

    obj = ctx.find_root().obj or {}
    return Memory(project_config(load_config(obj.get("config_path")), obj.get("project") or "default"))


def _remember_project(ctx: click.Context, _: click.Parameter, value: str | None) -> None:
    if value:
        root = ctx.find_root()
        root.obj = {**(root.obj or {}), "project": value}


def add_project_option(group: click.Group) -> None:
    """Give every command of ``group`` ``--project NAME`` (the store that project's keys reach)."""
    for command in {id(c): c for c in group.commands.values()}.values():  # a command may have two names
        project_option(command)


def project_option(command: click.Command) -> click.Command:
    command.params.append(click.Option(
        ["--project", "-p"], expose_value=False, callback=_remember_project, envvar="MEMLANE_PROJECT", is_eager=True,
        help="the project whose memories to use (as `memlane keys create --project` names it); default: default"))
    return command


def invoked_as() -> str:
    """How to run memlane again from here, for messages that suggest a command: ``memlane`` when
    that is on PATH (and is this one), else the script as it was started (``make run`` starts
    ``.venv/bin/memlane``, which is not on PATH until the venv is activated)."""
    script = sys.argv[0] if sys.argv else ""
    if os.path.basename(script) != "memlane":  # python -m memlane.cli, an embedding program
        return "memlane"
    on_path = shutil.which("memlane")
    if on_path and os.path.exists(script) and os.path.samefile(on_path, script):
        return "memlane"
    return script


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def json_option(value: str | None, name: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=name) from None


def scope_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--user/--agent/--run`` and ``--filters``, bundled as sqlite-utils bundles output options."""
    for option in reversed(
        [
            click.option("--user", "-u", "user_id", help="user_id scope"),
            click.option("--agent", "-a", "agent_id", help="agent_id scope"),
            click.option("--run", "-r", "run_id", help="run_id scope"),
            click.option("--filters", "-f", "filters", help='filter JSON, e.g. \'{"category": "food"}\''),
        ]
    ):
        fn = option(fn)
    return fn


#: The CLI's names for the engine's scope arguments.
SCOPE_OPTIONS = {"user_id": "--user", "agent_id": "--agent", "run_id": "--run"}
_NEEDS_SCOPE = re.compile(r"(?P<what>\S+) needs a scope: ")


def cli_message(exc: MemlaneError) -> str:
    """An engine error in the CLI's words: its options (``--user``), not the Python API's
    keyword arguments (``user_id``)."""
    message = exc.message
    needs = _NEEDS_SCOPE.match(message) if isinstance(exc, ScopeError) else None
    if needs:
        return f"{needs['what']} needs a scope: pass --user, --agent or --run (or --filters '{{\"user_id\": \"alice\"}}')"
    if exc.param in SCOPE_OPTIONS and message.startswith(exc.param):
        return SCOPE_OPTIONS[exc.param] + message[len(exc.param):]
    return message


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show memlane's own errors, and the model server's (unreachable, refusing, timing out),
    as one clear line, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MemlaneError as exc:
            raise click.ClickException(f"{type(exc).__name__}: {cli_message(exc)}") from None
        except Exception as exc:
            import openai

            if isinstance(exc, openai.APIError):  # the SDK's message names the server (memlane.proxy.embedded)
                raise click.ClickException(f"{type(exc).__name__}: {exc.message}") from None
            raise

    return wrapper


def output_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--json`` / ``--table``: readable tables on a terminal, JSON when piped (so scripts keep
    reading JSON), either one when asked. The command gets ``as_json: bool``."""
    fn = click.option("--json/--table", "as_json", default=None,
                      help="JSON or a table; default: a table on a terminal, JSON when piped")(fn)
    return fn


def wants_json(as_json: bool | None) -> bool:
    return as_json if as_json is not None else not sys.stdout.isatty()


def show(value: Any, kind: str, as_json: bool | None) -> None:
    """``value`` as JSON, or as a table of its ``kind``: memories, memory, history, status."""
    if wants_json(as_json):
        echo_json(value)
        return
    from rich.console import Console

    from memlane.cli import tables

    Console(soft_wrap=False).print(tables.render(kind, value))
