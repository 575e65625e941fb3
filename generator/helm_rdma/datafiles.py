"""The paths of the data shipped with helm-rdma (the chart, the presets, the schemas): inside the installed package, or
in the source tree."""

from __future__ import annotations

from pathlib import Path

from helm_rdma import contract

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
