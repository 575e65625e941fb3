"""JSON Schema validation that reports every problem with its dotted key path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jsonschema


def dotted(path: Any) -> str:
    """Render a jsonschema path (deque of keys and indexes) as ``a.b[0].c``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        keys = ", ".join(f'"{k}"' for k in extra)
        return f"unknown key {keys}; allowed: {', '.join(allowed)}"
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {', '.join(repr(v) for v in error.validator_value)}"
    if error.validator == "type":
        want = error.validator_value
        want_text = " or ".join(want) if isinstance(want, list) else want
        return f"expected {want_text}, got {type(error.instance).__name__} {error.instance!r}"
    return str(error.message)


def schema_problems(data: Any, schema: dict[str, Any]) -> list[tuple[str, str]]:
    """Validate ``data`` against a draft-07 ``schema``.

    Returns:
        (dotted key path, what is wrong) for every violation, sorted by path; empty when valid.
    """
    import jsonschema  # 60 ms to import: only where something is really validated

    validator = jsonschema.Draft7Validator(schema)
    found = []
    for error in validator.iter_errors(data):
        path = list(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            if len(extra) == 1:
                path.append(extra[0])
        found.append((dotted(path), _describe(error)))
    return sorted(set(found))

