"""The schema for override files (values.override.schema.json): the chart's values schema without the keys it demands.

A values file given with `-f` holds the few keys a user changes; helm merges it key by key into the chart's values and
checks the merged result against values.schema.json, which lists every key as required. An editor pointed at that
schema reports every key the file leaves out. The override schema is the same schema (closed objects, types, enums,
ranges, patterns, descriptions, defaults) without ``required`` on the objects helm merges key by key, so the editor
flags only what helm would refuse in the merged values for this file's sake.
"""

from __future__ import annotations

from typing import Any

OVERRIDE_SCHEMA = "values.override.schema.json"


def override_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The override schema of the published values ``schema``: its own ``$id`` and title (two schemas under one id
    would be one schema to a tool that caches by id), and no ``required`` where helm merges (`_optional`)."""
    out = _optional(schema)
    out["$id"] = schema["$id"].rsplit("/", 1)[0] + "/" + OVERRIDE_SCHEMA
    out["title"] = f"{schema['title']}, for override files"
    return out


def _optional(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of the values ``schema`` without ``required`` on the root and on every object reached from it through
    ``properties``: the maps helm merges with the chart's values key by key.

    ``required`` stays where a value is never merged, so an override file must give it whole: under ``items`` (helm
    replaces a list as a whole), under ``additionalProperties`` (an entry of a map of the user's own), in conditions
    (``if``, ``not``, ``oneOf``, where it is a test rather than a demand) and in the Kubernetes definitions.
    """
    out = {k: v for k, v in schema.items() if k != "required"}
    if "properties" in schema:
        out["properties"] = {key: _optional(sub) for key, sub in schema["properties"].items()}
    return out
