"""The command-line reference, generated from the click commands so it never drifts:
``python -m memlane.cli.reference > docs/cli.md`` (a test checks the file is current)."""

from __future__ import annotations

import inspect

import click

INTRO = """# Command line

Generated from the commands themselves (`python -m memlane.cli.reference > docs/cli.md`); `memlane
COMMAND --help` prints the same. Every command reads the config from `--config FILE` or
`MEMLANE_CONFIG` (default: the embedded SQLite store under `MEMLANE_HOME`, `~/.memlane`). Long
operations (export, import, model build) show a progress bar on a terminal and stay quiet when
piped; output meant for programs is JSON.
"""


def _usage(command: click.Command, path: str) -> str:
    ctx = click.Context(command, info_name=path)
    return " ".join(command.collect_usage_pieces(ctx))


def _options(command: click.Command) -> list[str]:
    rows = []
    ctx = click.Context(command)
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None or "--help" in getattr(param, "opts", ()):
            continue
        names, help_text = record
        rows.append(f"| `{names}` | {help_text.replace('|', '/')} |")
    return rows


def _help(text: str) -> list[str]:
    """A docstring as Markdown: click's ``\\b`` paragraphs (kept as typed) become code blocks."""
    out: list[str] = []
    first, _, rest = text.partition("\n")
    for paragraph in (first.strip() + "\n\n" + inspect.cleandoc(rest)).split("\n\n"):
        if paragraph.startswith("\b"):
            out += ["```", paragraph[1:].strip("\n"), "```", ""]
        elif paragraph.strip():
            out += [" ".join(line.strip() for line in paragraph.splitlines()), ""]
    return out


def _section(command: click.Command, path: str, level: int) -> list[str]:
    lines = [f"{'#' * level} `{path}`", ""]
    usage = _usage(command, path)
    lines += ["```", f"{path} {usage}".rstrip(), "```", ""]
    if command.help:
        lines += _help(command.help)
    rows = _options(command)
    if rows:
        lines += ["| option | what |", "|---|---|", *rows, ""]
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            lines += _section(command.commands[name], f"{path} {name}", min(level + 1, 4))
    return lines


def render() -> str:
    from memlane.cli import cli

    lines = [INTRO]
    for name in sorted(cli.commands):
        lines += _section(cli.commands[name], f"memlane {name}", 2)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
