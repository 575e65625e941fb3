"""How commands explain themselves, as helm's do: a one-line summary each, examples under "Examples:", and
`helm rdma` as the program's name when helm runs the plugin (helm sets HELM_PLUGIN_NAME for its plugins)."""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from typing import Any

import click

# What an example does, and the arguments after the program's name (`install llama405b --preset h100`).
Example = tuple[str, str]


def program_name(environ: Mapping[str, str] | None = None) -> str:
    """`helm rdma` when helm runs us as its plugin, else the console script's `helm-rdma`."""
    env = os.environ if environ is None else environ
    plugin = env.get("HELM_PLUGIN_NAME")
    return f"helm {plugin}" if plugin else "helm-rdma"


def summary(command: click.Command) -> str:
    """The first paragraph of a command's help on one line: what the command lists and the docs show."""
    if command.short_help:
        return " ".join(command.short_help.split())
    return " ".join(inspect.cleandoc(command.help or "").partition("\n\n")[0].split())


def examples_of(command: click.Command) -> tuple[Example, ...]:
    """The examples a command shows under "Examples:" (none for a plain click command)."""
    return tuple(getattr(command, "examples", ()))


class Teaching:
    """Mixin for click commands and groups: ``examples=[(what, args), ...]`` shown after the options."""

    def __init__(self, *args: Any, examples: Sequence[Example] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.examples = tuple(examples)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)  # type: ignore[misc]
        if not self.examples:
            return
        prog = ctx.find_root().info_name or program_name()
        with formatter.section("Examples"):
            indent = " " * formatter.current_indent
            for i, (what, args) in enumerate(self.examples):
                if i:
                    formatter.write("\n")
                formatter.write(f"{indent}# {what}\n{indent}{prog} {args}\n")


class RdmaCommand(Teaching, click.Command):
    """A helm-rdma command: a summary line, its options, then examples."""
