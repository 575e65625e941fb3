"""Shipped documents (presets, the model catalog) parsed and schema-checked once per content.

A file that passed its schema before is read from a JSON copy in the cache, so that a command imports neither PyYAML
nor jsonschema on every run. Like Python's own .pyc files, the copy is keyed by the file's path, size and modification
time (and the schema's, and helm-rdma's version): any edit makes a new key, and the file is parsed and validated
again. An unwritable cache only means doing that work every time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helm_rdma import __version__
from helm_rdma.helmenv import cache_get, cache_put
from helm_rdma.validation import schema_problems
from helm_rdma.yamlfile import load_json_schema, load_yaml_file


def load_checked(path: Path, *, schema: Path) -> tuple[Any, list[tuple[str, str]]]:
    """Parse a shipped YAML file and check it against ``schema``.

    Returns:
        The data, and the schema problems as (dotted key path, what is wrong); no problems when it came from the cache.

    Raises:
        YamlFileError: The file is missing or not valid YAML.
    """
    key = f"{__version__}|{_stamp(path)}|{_stamp(schema)}"
    entry = cache_get("documents", key)
    if entry is not None and "data" in entry:
        return entry["data"], []
    data = load_yaml_file(path)
    problems = schema_problems(data, load_json_schema(schema))
    if not problems:
        cache_put("documents", key, {"data": data})
    return data, problems


def _stamp(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return f"{path}:missing"
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
