"""How commands print: a result as a table, JSON or YAML (helm's -o/--output), and warnings on standard error."""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import click

FORMATS = ("table", "json", "yaml")


def output_option(*, default: str = "table", formats: tuple[str, ...] = FORMATS) -> Callable[[Any], Any]:
    """helm's -o/--output: the format of the result, handed to the command as ``fmt``."""
    return click.option("--output", "-o", "fmt", type=click.Choice(formats), default=default, show_default=True,
                        help="Print the result as " + ", ".join(formats[:-1]) + f" or {formats[-1]} (as helm's -o).")


def data_of(result: Any) -> Any:
    """What a result is as JSON: its to_dict(), a named tuple's fields, or itself (lists of them too)."""
    if isinstance(result, list | tuple) and not hasattr(result, "_asdict"):
        return [data_of(item) for item in result]
    if hasattr(result, "to_dict"):
        return result.to_dict()
    if hasattr(result, "_asdict"):
        return result._asdict()
    return result


def emit(result: Any, fmt: str, *, table: Callable[[], str] | None = None) -> None:
    """Print ``result`` on standard output in ``fmt``: json and yaml from the same data (``data_of``), table from
    ``table`` (lines without their final newline), else as YAML."""
    if fmt == "json":
        click.echo(json.dumps(data_of(result), indent=2))
    elif fmt == "yaml" or table is None:
        import yaml

        click.echo(yaml.safe_dump(data_of(result), sort_keys=False, width=1000), nl=False)
    else:
        click.echo(table())


def _width() -> int | None:
    """The width to wrap to: the terminal's when standard error is one (or $COLUMNS says), else none (logs keep one
    line per message)."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    if sys.stderr.isatty():
        return shutil.get_terminal_size().columns
    return None


def warn(text: str, *, level: str = "warning") -> None:
    """Print ``text`` on standard error with ``level:`` in front of every line, wrapped to the terminal, the prefix in
    colour only on a terminal and never with NO_COLOR set (https://no-color.org)."""
    prefix = f"{level}: "
    width = _width()
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        if width is None or width - len(prefix) < 20:
            lines.append(paragraph)
        else:
            lines += textwrap.wrap(paragraph, width=width - len(prefix), break_long_words=False,
                                   break_on_hyphens=False) or [""]
    shown = prefix if os.environ.get("NO_COLOR") else click.style(prefix, fg="red" if level == "error" else "yellow",
                                                                   bold=True)
    for line in lines:
        click.echo(f"{shown}{line}", err=True)  # click drops the colour when standard error is not a terminal


def columns(rows: list[tuple[str, ...]] | list[Any]) -> str:
    """Rows as left-aligned columns two spaces apart (the first row is the header)."""
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def flat_rows(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, value) for every leaf of nested mappings, as --set spells keys; a list of scalars is one value."""
    if isinstance(data, dict):
        return [row for key, value in data.items() for row in flat_rows(value, f"{prefix}.{key}" if prefix else key)]
    if isinstance(data, list) and any(isinstance(item, dict | list) for item in data):
        return [row for i, item in enumerate(data) for row in flat_rows(item, f"{prefix}[{i}]")]
    if isinstance(data, list):
        return [(prefix, ", ".join(map(str, data)))]
    return [(prefix, "" if data is None else str(data))]
