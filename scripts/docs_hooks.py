"""MkDocs hook: the command-line reference, generated from the typer app at build time, so it cannot drift.

``docs/cli.md`` holds the marker ``<!-- natgrad-cli-reference -->``; this hook replaces it with one section per
command (every subcommand of every group, recursively): its help, its usage line and a table of its arguments and
options with their defaults, read from the click command that typer builds. A command added to ``natgrad.cli``
appears here without anyone editing the page. ``python scripts/docs_hooks.py`` prints the generated markdown.
"""

from __future__ import annotations

import re
from typing import Any

MARKER = "<!-- natgrad-cli-reference -->"


def cli_reference() -> str:
    """The markdown reference of every ``natgrad`` command."""
    import typer

    from natgrad.cli import app

    root = typer.main.get_command(app)
    return "\n".join(_command(root, ["natgrad"], None)).rstrip() + "\n"


def _command(cmd: Any, path: list[str], parent: Any) -> list[str]:
    """The section of ``cmd`` and its subcommands. Typer builds click-style commands (its own copy of click, so
    they are read by duck typing, not isinstance)."""
    ctx = cmd.context_class(cmd, info_name=path[-1], parent=parent)
    name = " ".join(path)
    lines = [f"{'#' * min(len(path) + 1, 4)} `{name}`", ""]
    if cmd.help:
        lines += [_paragraphs(cmd.help), ""]
    lines += ["```text", f"{name} {' '.join(cmd.collect_usage_pieces(ctx))}".rstrip(), "```", ""]
    params = [p for p in cmd.params if not getattr(p, "hidden", False)]
    if params:
        lines += ["| argument / option | default | what |", "|---|---|---|"]
        lines += [_param_row(p, ctx) for p in params]
        lines.append("")
    if hasattr(cmd, "list_commands"):
        for sub in cmd.list_commands(ctx):
            lines += _command(cmd.get_command(ctx, sub), [*path, sub], ctx)
    return lines


def _param_row(param: Any, ctx: Any) -> str:
    """One table row from the parameter's own help record (click's ``get_help_record``, as ``--help`` prints it):
    names with the value's metavar, the help text, and the default split off it."""
    record = param.get_help_record(ctx)
    if record is None:  # a plain click argument has none
        record = (param.human_readable_name, getattr(param, "help", None) or "")
    names, text = record
    text = " ".join(text.split())
    default = "—"
    found = re.search(r"\s*\[(?:default: (.*?)|(required))\]$", text)
    if found:
        text = text[: found.start()]
        default = "required" if found.group(2) else f"`{found.group(1)}`"
    if getattr(param, "multiple", False) and "repeatable" not in text:
        text += " (repeatable)"
    return f"| `{names}` | {default} | {_cell(text)} |"


def _paragraphs(text: str) -> str:
    return "\n\n".join(_escape(" ".join(block.split())) for block in text.strip().split("\n\n"))


def _cell(text: str) -> str:
    return _escape(" ".join(text.split())).replace("|", "\\|")


def _escape(text: str) -> str:
    """Plain help text as markdown text: ``<env>`` is a placeholder, not an HTML tag."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """MkDocs event: put the generated reference where the page has the marker."""
    if MARKER in markdown:
        return markdown.replace(MARKER, cli_reference())
    return markdown


if __name__ == "__main__":
    print(cli_reference(), end="")
