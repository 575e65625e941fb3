"""The paths of the data shipped with helm-rdma (the chart, the presets, the schemas): inside the installed package, or
in the source tree; and the chart's defaults as the values schema holds them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helm_rdma import contract
from helm_rdma.yamlfile import load_json_schema

_PACKAGE = Path(__file__).resolve().parent


def data_root() -> Path:
    """The directory holding charts/, presets/ and schemas/.

    A built wheel carries them under helm_rdma/_data (see pyproject.toml); an editable install or a checkout
    reads them from the top of the repository.
    """
    bundled = _PACKAGE / "_data"
    if bundled.is_dir():
        return bundled
    return _PACKAGE.parents[1]


def chart_dir() -> Path:
    """The vllm-rdma chart whose templates every generated chart copies."""
    return data_root() / "charts" / contract.NAME


def presets_dir() -> Path:
    """The directory of shape presets and the model catalog."""
    return data_root() / "presets"


def schema_path(name: str) -> Path:
    """A JSON Schema shipped with the package, such as ``preset.schema.json``."""
    return data_root() / "schemas" / name


def values_default(key: str) -> Any:
    """The chart's default of the dotted values ``key`` (``clusterNetwork.timeoutMinutes``), read from
    schemas/values.schema.json, the one home of every default; commands and flags that restate one derive it here."""
    node = load_json_schema(schema_path("values.schema.json"))
    for part in key.split("."):
        node = node["properties"][part]
    return node["default"]


def values_range(key: str) -> tuple[Any, Any]:
    """The chart's minimum and maximum of the dotted values ``key``, from schemas/values.schema.json (None where the
    schema has none)."""
    node = load_json_schema(schema_path("values.schema.json"))
    for part in key.split("."):
        node = node["properties"][part]
    return node.get("minimum"), node.get("maximum")


def go_minutes(minutes: int) -> str:
    """``minutes`` as a Go duration the way a person writes it: 2h, 90m."""
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"
