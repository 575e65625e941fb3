"""Files this repository generates from its own sources and keeps in git (the default chart's values, schema,
README and NCCL look-alikes template; completion, plugin.yaml and the README's CLI blocks): a `make` target writes
them, and ``--check`` (and a test) holds them against their sources."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path


def stale(expected: Mapping[Path, str]) -> list[Path]:
    """The files whose text differs from ``expected`` (or that are missing)."""
    return [path for path, text in expected.items()
            if not path.is_file() or path.read_text(encoding="utf-8") != text]


def sync(argv: list[str], expected: Mapping[Path, str], *, root: Path, source: str, target: str) -> int:
    """With ``--check`` in ``argv``: name each stale file (relative to ``root``), saying it differs from ``source``
    and that `make TARGET` refreshes it, and return 1 if any; otherwise write the stale files and return 0."""
    changed = stale(expected)
    if "--check" in argv:
        for path in changed:
            print(f"{path.relative_to(root)} differs from {source}; run `make {target}`", file=sys.stderr)
        return 1 if changed else 0
    for path in changed:
        path.write_text(expected[path], encoding="utf-8")
        print(f"wrote {path.relative_to(root)}")
    return 0
