"""Layering values: deep merge with a record of where each key came from, and helm-style --set parsing."""

from __future__ import annotations

import copy
import re
from typing import Any

from .errors import SetSyntaxError

_INDEX = re.compile(r"^(?P<key>[^\[\]]+)\[(?P<index>\d+)\]$")


class Layered:
    """Values built up layer by layer; ``origins`` maps each dotted key path set by a layer to that layer's name."""

    def __init__(self, values: dict[str, Any] | None = None, origins: dict[str, str] | None = None) -> None:
        self.values: dict[str, Any] = values if values is not None else {}
        self.origins: dict[str, str] = origins if origins is not None else {}

    def apply(self, layer: dict[str, Any], origin: str) -> None:
        """Deep-merge ``layer`` on top (maps merge, anything else replaces; None removes the key, as in helm, except
        in the chart's own defaults, where null is a value: "decide from other keys")."""
        _merge(self.values, layer, origin, "", self.origins, keep_null=origin == "defaults")

    def set_by_user(self, path: str) -> bool:
        """Whether a layer other than the defaults set ``path`` (or a parent of it)."""
        return any(_covers(p, path) and o != "defaults" for p, o in self.origins.items())

    def origin_of(self, path: str) -> str:
        """The layer that last set ``path`` or its nearest parent, for messages."""
        best, origin = "", "defaults"
        for p, o in self.origins.items():
            if _covers(p, path) and len(p) >= len(best):
                best, origin = p, o
        return origin


def _covers(parent: str, path: str) -> bool:
    return path == parent or path.startswith(parent + ".") or path.startswith(parent + "[")


def _merge(base: dict[str, Any], layer: dict[str, Any], origin: str, prefix: str, origins: dict[str, str],
           *, keep_null: bool = False) -> None:
    for key, value in layer.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if value is None and not keep_null:
            base.pop(key, None)
            origins[path] = origin
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, origin, path, origins, keep_null=keep_null)
            if not value:
                origins.setdefault(path, origin)
        else:
            base[key] = copy.deepcopy(value)
            origins[path] = origin


def _split_key(key: str) -> list[str]:
    parts, current, escaped = [], "", False
    for char in key:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _scalar(text: str) -> Any:
    import yaml

    if text == "":
        return ""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (str, int, float, bool)) or value is None else text


def parse_set(argument: str) -> dict[str, Any]:
    """Turn one ``--set`` argument into a nested mapping.

    ``a.b=1`` gives ``{"a": {"b": 1}}``; values are read as YAML scalars (``true``, ``3``, ``null``), ``\\.`` escapes a
    dot inside a key (``placement.nodeSelector.node\\.kubernetes\\.io/x=y``), ``k[0]=v`` sets a list item, and
    ``{a,b}`` gives a list of strings. Several assignments may be joined with commas outside braces; ``\\,`` is a
    comma inside a value.

    Raises:
        SetSyntaxError: The argument is not KEY=VALUE.
    """
    result: dict[str, Any] = {}
    for assignment in _split_assignments(argument):
        if "=" not in assignment:
            raise SetSyntaxError(argument=argument, problem=f'"{assignment}" has no "="')
        key, raw = assignment.split("=", 1)
        parts = _split_key(key)
        if not key or any(not p for p in parts):
            raise SetSyntaxError(argument=argument, problem=f'"{key}" is not a dotted key')
        if raw.startswith("{") and raw.endswith("}"):
            value: Any = [item for item in raw[1:-1].split(",") if item]
        else:
            value = _scalar(raw)
        _assign(result, parts, value, argument)
    return result


def _split_assignments(argument: str) -> list[str]:
    out, current, depth, escaped = [], "", 0, False
    for char in argument:
        if escaped:  # "\," is a literal comma, as in helm; other escapes (such as "\." in keys) stay as they are
            current += char if char == "," else "\\" + char
            escaped = False
            continue
        if char == "\\":
            escaped = True
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        if char == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += char
    out.append(current)
    return [a for a in out if a]


def _assign(target: dict[str, Any], parts: list[str], value: Any, argument: str) -> None:
    node: Any = target
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        match = _INDEX.match(part)
        if match:
            name, index = match["key"], int(match["index"])
            items = node.setdefault(name, [])
            if not isinstance(items, list):
                raise SetSyntaxError(argument=argument, problem=f'"{name}" is both a list and a map')
            while len(items) <= index:
                items.append({} if not last else None)
            if last:
                items[index] = value
            else:
                if not isinstance(items[index], dict):
                    items[index] = {}
                node = items[index]
        elif last:
            node[part] = value
        else:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SetSyntaxError(argument=argument, problem=f'"{part}" is set both as a value and as a map')
            node = child
