"""Writing values.yaml with a comment on every key, taken from the values schema and the preset's sources."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from helm_rdma.resolve.values import OMITTED_DEFAULT, PUBLISHED_DEFAULT_LIMIT, default_stand_in

MODELINE = "# yaml-language-server: $schema=values.schema.json"
WIDTH = 116


def render_values(values: dict[str, Any], schema: dict[str, Any], *, notes: dict[str, str], header: str) -> str:
    """Render ``values`` as YAML in the schema's key order, each key preceded by its description.

    Args:
        values: Resolved values.
        schema: The values schema (descriptions come from it).
        notes: Extra comments by dotted path (sources of preset values, the flag that set a key).
        header: Comment lines placed after the modeline.
    """
    lines = [MODELINE] + [f"# {line}" if line else "#" for line in header.splitlines()] + [""]
    _render_mapping(values, schema, notes, "", 0, lines)
    return "\n".join(lines).rstrip() + "\n"


def _comment(text: str, indent: int) -> list[str]:
    pad = " " * indent
    # Comments quote the user's flags: no character may end the comment's line (YAML 1.1 also breaks lines at
    # U+0085, U+2028 and U+2029), or the rest would be read as values.
    text = "".join(c if c.isprintable() else " " for c in text)
    lines = textwrap.wrap(text, WIDTH - indent - 2, break_on_hyphens=False, break_long_words=False)
    return [f"{pad}# {line}" for line in lines]


def _scalar(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) or value == "" or _needs_quotes(value) else value


def _needs_quotes(text: str) -> bool:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        plain = text[0].isalnum() or text[0] in "/._-"
        return (not plain or yaml.load(text, Loader=loader) != text or text != text.strip()
                or ": " in text or " #" in text)
    except yaml.YAMLError:
        return True


def _ordered_keys(values: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    known = [k for k in schema.get("properties", {}) if k in values]
    return known + [k for k in values if k not in known]


def _render_mapping(values: dict[str, Any], schema: dict[str, Any], notes: dict[str, str], prefix: str,
                    indent: int, lines: list[str]) -> None:
    pad = " " * indent
    for key in _ordered_keys(values, schema):
        value = values[key]
        path = f"{prefix}.{key}" if prefix else key
        sub = schema.get("properties", {}).get(key) or _additional(schema)
        text = sub.get("description", "")
        if path in notes:
            text = f"{text} {notes[path]}".strip() if text else notes[path]
        if indent == 0 and lines[-1] != "":
            lines.append("")
        lines.extend(_comment(text, indent))
        name = _scalar(key)
        if isinstance(value, dict) and value:
            lines.append(f"{pad}{name}:")
            _render_mapping(value, sub, notes, path, indent + 2, lines)
        elif isinstance(value, list) and value:
            import yaml

            lines.append(f"{pad}{name}:")
            dumped = yaml.safe_dump(value, default_flow_style=False, sort_keys=False, width=1000)
            lines.extend(f"{pad}  {line}" for line in dumped.rstrip().splitlines())
        else:  # a scalar, {} or []
            lines.append(f"{pad}{name}: {_scalar(value)}")


def _additional(schema: dict[str, Any]) -> dict[str, Any]:
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else {}


def schema_with_defaults(schema: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` whose ``default`` of each key is the resolved value, so an IDE shows what was generated;
    a value larger than PUBLISHED_DEFAULT_LIMIT is not repeated (values.yaml holds it): its stand-in names its size
    and sha256 instead."""
    out = dict(schema)
    props = schema.get("properties")
    if isinstance(props, dict):
        out["properties"] = {}
        for key, sub in props.items():
            if key in values:
                sub = schema_with_defaults(sub, values[key]) if isinstance(values[key], dict) else dict(sub)
                default = _in_schema_order(values[key], sub)
                if len(json.dumps(default, separators=(",", ":"))) > PUBLISHED_DEFAULT_LIMIT:
                    sub.pop("default", None)
                    sub[OMITTED_DEFAULT] = default_stand_in(default)
                else:
                    sub["default"] = default
            out["properties"][key] = sub
    return out


def _in_schema_order(value: Any, schema: dict[str, Any]) -> Any:
    """``value`` with the keys of each mapping in the schema's order (then the others as they come), as values.yaml
    has them: a value set from a -f file is merged in last, and must not move its line in the published schema."""
    if not isinstance(value, dict):
        return value
    props = schema.get("properties") or {}
    return {key: _in_schema_order(value[key], props.get(key) or _additional(schema))
            for key in _ordered_keys(value, schema)}
