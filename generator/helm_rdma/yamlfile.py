"""Reading YAML and JSON files into plain data, with errors that name the file and the line."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from .errors import YamlFileError


def load_yaml_file(path: Path, *, label: str | None = None) -> Any:
    """Load one YAML document with PyYAML's safe loader.

    Args:
        path: The file to read.
        label: How to name the file in messages (defaults to the path).

    Raises:
        YamlFileError: The file is missing, unreadable, or not valid YAML (with its line).
    """
    import yaml  # PyYAML costs 10 ms to import: only where a YAML file is really read

    name = label or str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise YamlFileError(path=name, problem="no such file") from None
    except OSError as exc:
        raise YamlFileError(path=name, problem=f"cannot read it: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise YamlFileError(path=name, problem="not UTF-8 text") from None
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # safe, in C where possible
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise YamlFileError(path=name, line=line, problem=f"invalid YAML: {problem}") from None


@cache
def load_json_schema(path: Path) -> dict[str, Any]:
    """Load a JSON Schema that ships with the package (cached: schemas never change at run time)."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
