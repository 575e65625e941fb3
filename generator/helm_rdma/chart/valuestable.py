"""The values table of a chart's README, generated from the values schema as helm-docs does: key, type, default
(the generated value) and description of every key, so that the README can never drift from the schema."""

from __future__ import annotations

import json
from typing import Any

from helm_rdma.resolve.values import OMITTED_DEFAULT
from helm_rdma.suggest import clip

HEADER = ("| Key | Type | Default | Description |", "|-----|------|---------|-------------|")
DEFAULT_WIDTH = 80  # longer defaults are cut (values.yaml holds them whole)


def values_rows(schema: dict[str, Any], prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """(dotted key, type, default, description) of every leaf of ``schema`` in its key order; an object without
    known keys (a map, such as nccl.settings) is one row."""
    rows = []
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}.{key}" if prefix else key
        if sub.get("properties"):
            rows += values_rows(sub, path)
        else:
            rows.append((path, _type(sub), sub.get("default", sub.get(OMITTED_DEFAULT)),
                         str(sub.get("description", ""))))
    return rows


def values_table(schema: dict[str, Any]) -> str:
    """The markdown table of every value of ``schema`` (a published schema: its defaults are the chart's values)."""
    lines = list(HEADER)
    for key, kind, default, description in values_rows(schema):
        lines.append(f"| `{_cell(key)}` | {_cell(kind)} | {_default(default)} | {_cell(description)} |")
    return "\n".join(lines) + "\n"


def _type(sub: dict[str, Any]) -> str:
    if "enum" in sub:
        return " | ".join(json.dumps(v) for v in sub["enum"])
    kind = sub.get("type")
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    return str(kind) if kind else "any"  # every leaf of the values schema has an enum or a type


def _default(value: Any) -> str:
    return f"`{_cell(clip(json.dumps(value, sort_keys=False, ensure_ascii=False), DEFAULT_WIDTH))}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
