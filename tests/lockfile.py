"""Reading the hash-locked requirement files under locks/ (uv's `pip compile --generate-hashes` output)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from packaging.markers import Marker
from packaging.utils import canonicalize_name

from .conftest import REPO

LOCKS = REPO / "locks"
RUNTIME = LOCKS / "runtime.txt"
OCI = LOCKS / "oci.txt"

_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*(?:;\s*(?P<marker>[^\\]+?))?\s*\\?$")


class Pin(NamedTuple):
    """One pinned distribution of a lock, with the environments it applies to and its allowed sha256 digests."""

    name: str
    version: str
    marker: str | None
    hashes: tuple[str, ...]

    def applies(self) -> bool:
        """Whether this pin applies to the Python running the tests."""
        return self.marker is None or Marker(self.marker).evaluate()


def pins(lock: Path) -> list[Pin]:
    """Every pin of ``lock``, in file order."""
    out: list[Pin] = []
    current: dict[str, object] | None = None
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match:
            if current:
                out.append(Pin(**current))  # type: ignore[arg-type]
            current = {"name": canonicalize_name(match["name"]), "version": match["version"],
                       "marker": match["marker"], "hashes": ()}
            continue
        hashed = re.match(r"^\s+--hash=sha256:([0-9a-f]{64})", line)
        if hashed and current is not None:
            current["hashes"] = (*current["hashes"], hashed[1])  # type: ignore[misc]
    if current:
        out.append(Pin(**current))  # type: ignore[arg-type]
    return out


def pinned_here(lock: Path) -> dict[str, str]:
    """name -> version of what ``lock`` installs on the Python running the tests."""
    return {p.name: p.version for p in pins(lock) if p.applies()}


def parse_freeze(text: str) -> dict[str, str]:
    """name -> version of `pip freeze` output."""
    out = {}
    for line in text.splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            out[canonicalize_name(name)] = version.strip()
    return out
