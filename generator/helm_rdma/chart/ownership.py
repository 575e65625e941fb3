"""Who owns each file of a generated chart's directory: the record generate keeps there (``.helm-rdma``), the hand
edits of the files it wrote, and the files someone else put there.

The chart is the tool's; the user's choices live in values files of the user's own, which the record names (paths
relative to the chart directory) so that a regeneration reads them again. The record lists every file generate wrote
with its sha256: a file whose bytes differ, or that is gone, was edited by hand, and a regeneration stops rather than
overwrite it. A file the record does not list was put there by someone else: a regeneration stops and names it,
unless it is one of the values files the record names (those stay where they are).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helm_rdma import __version__
from helm_rdma.chart.meta import value_changes
from helm_rdma.errors import DamagedRecordError
from helm_rdma.resolve.values import schema_defaults

MARKER = ".helm-rdma"
RECORD_HEADER = (
    "# Written by `helm-rdma generate`: the files it wrote into this chart, with their sha256, and the values files\n"
    "# it reads on every regeneration (paths relative to this directory). Keep your choices in those values files:\n"
    "# `generate --force` rewrites only the files below, and stops when one of them was edited by hand or when this\n"
    "# directory holds any other file than these and the values files named here.\n"
)
# The whole marker helm-rdma 0.1.0 wrote, which listed no files: only this text is a chart of that version.
LEGACY_TEXT = "Written by `helm-rdma generate`; `helm-rdma generate --force` may replace this directory."
VALUES = "values.yaml"
SCHEMA = "values.schema.json"
KEYS_LISTED = 8


@dataclass(frozen=True)
class ChartRecord:
    """What ``.helm-rdma`` says: the files generate wrote (relative path -> sha256 hex) and the user's values files.

    ``legacy`` is a marker written by a helm-rdma that kept no record (its files are unknown).
    """

    files: Mapping[str, str] = field(default_factory=dict)
    value_files: tuple[str, ...] = ()
    legacy: bool = False


@dataclass(frozen=True)
class Survey:
    """A generated chart's directory as found: the tool's files edited by hand (with the values.yaml keys that
    differ), and the files and empty directories someone else put there."""

    edited: tuple[str, ...]
    foreign: tuple[str, ...]


def digest(data: bytes) -> str:
    """The sha256 of a file's bytes, as the record holds it."""
    return hashlib.sha256(data).hexdigest()


def record_text(*, files: Mapping[str, bytes], value_files: tuple[str, ...]) -> str:
    """The text of ``.helm-rdma`` for the files just written (relative path -> bytes)."""
    document = {"helmRdma": __version__, "valueFiles": list(value_files),
                "files": {name: digest(data) for name, data in sorted(files.items())}}
    return RECORD_HEADER + json.dumps(document, indent=2) + "\n"


def read_record(chart: Path) -> ChartRecord | None:
    """The record of a chart directory; None when there is no marker; ``legacy`` for the one sentence helm-rdma
    0.1.0 wrote.

    Raises:
        DamagedRecordError: Any other marker that is not a record (a merge conflict in it, a truncated file).
    """
    path = chart / MARKER
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DamagedRecordError(path=str(path), problem=f"cannot be read ({exc})") from None
    if text.strip() == LEGACY_TEXT:
        return ChartRecord(legacy=True)
    if any(line.startswith(("<<<<<<<", ">>>>>>>", "=======")) for line in text.splitlines()):
        raise DamagedRecordError(path=str(path), problem="holds git merge-conflict markers")
    try:
        document = json.loads("\n".join(line for line in text.splitlines() if not line.startswith("#")))
    except ValueError:
        raise DamagedRecordError(path=str(path), problem="is not the JSON record generate writes") from None
    files, value_files = (document.get(k) if isinstance(document, dict) else None for k in ("files", "valueFiles"))
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise DamagedRecordError(path=str(path), problem="lists no files with their sha256 as generate writes them")
    if not isinstance(value_files, list) or not all(isinstance(v, str) for v in value_files):
        value_files = []
    return ChartRecord(files={str(k): v for k, v in files.items()}, value_files=tuple(value_files))


def survey(chart: Path, record: ChartRecord) -> Survey:
    """Compare a chart directory with its record: each edited or deleted file of generate's, and each other file."""
    edited = []
    for name, expected in sorted(record.files.items()):
        path = chart / name
        if path.is_symlink() or not path.is_file():
            edited.append(f"{name} (deleted)" if not path.exists() else f"{name} (replaced)")
        elif digest(path.read_bytes()) != expected:
            edited.append(_with_keys(chart, name, record))
    foreign = []
    for path in sorted(chart.rglob("*")):
        rel = path.relative_to(chart).as_posix()
        if rel == MARKER or rel in record.files:
            continue
        if path.is_symlink() or path.is_file() or (path.is_dir() and not any(path.iterdir())):
            foreign.append(rel)
    return Survey(edited=tuple(edited), foreign=tuple(foreign))


def _with_keys(chart: Path, name: str, record: ChartRecord) -> str:
    """``values.yaml (vllm.maxModelLen, ...)``: the keys whose values differ from what generate wrote (the defaults
    of the published schema, when that file is as generate wrote it), or the file's name alone."""
    if name != VALUES:
        return name
    keys = edited_keys(chart) if _intact(chart, SCHEMA, record) else None
    if keys is None:
        return name
    if not keys:
        return f"{name} (comments or layout only)"
    listed = ", ".join(keys[:KEYS_LISTED]) + (f" and {len(keys) - KEYS_LISTED} more" if len(keys) > KEYS_LISTED else "")
    return f"{name} ({listed})"


def _intact(chart: Path, name: str, record: ChartRecord) -> bool:
    path = chart / name
    return path.is_file() and name in record.files and digest(path.read_bytes()) == record.files[name]


def edited_keys(chart: Path) -> list[str] | None:
    """The dotted keys of ``values.yaml`` that differ from the values generate wrote (which its values.schema.json
    holds as defaults); None when either file cannot be read."""
    import yaml

    try:
        written = schema_defaults(json.loads((chart / SCHEMA).read_text(encoding="utf-8")))
        found: Any = yaml.safe_load((chart / VALUES).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError):
        return None
    if not isinstance(found, dict):
        return None
    return [key for key, _, _ in value_changes(written, found)]
