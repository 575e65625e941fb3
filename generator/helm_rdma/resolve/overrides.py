"""Layering values: deep merges with a record of where each key came from, by helm's rules.

Two rules, both helm's: user values (files and the --set family) merge with ``merge_maps``; laid over the chart's
own values they ``coalesce``, where a null removes a key the chart has.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


class Layered:
    """Values built up layer by layer; ``origins`` maps each dotted key path set by a layer to that layer's name."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.origins: dict[str, str] = {}

    def apply(self, layer: dict[str, Any], origin: str) -> None:
        """Deep-merge ``layer`` on top: maps merge, anything else replaces. A null is a value here: the chart's
        defaults hold nulls ("decide from other keys"), and the flags' layers (ChartRequest) never hold one."""
        _merge(self.values, layer, origin, "", self.origins)

    def apply_user(self, user: dict[str, Any], origins: dict[str, str]) -> None:
        """Lay the user's merged values over these, as helm lays them over a chart's values (see ``coalesce``)."""
        self.values = coalesce(self.values, user)
        self.origins.update(origins)

    def set_by_user(self, path: str) -> bool:
        """Whether a layer other than the defaults set ``path`` (or a parent of it)."""
        return any(_covers(p, path) and o != "defaults" for p, o in self.origins.items())


def origin_of(path: str, origins: Mapping[str, str]) -> str:
    """Where the value of ``path`` came from, for messages (``-f FILE``, ``--set ...``, "defaults"): the origin of
    ``path`` itself or of its nearest parent."""
    best, origin = "", "defaults"
    for p, o in origins.items():
        if _covers(p, path) and len(p) >= len(best):
            best, origin = p, o
    return origin


def _covers(parent: str, path: str) -> bool:
    return path == parent or path.startswith(parent + ".") or path.startswith(parent + "[")


def _merge(base: dict[str, Any], layer: dict[str, Any], origin: str, prefix: str, origins: dict[str, str]) -> None:
    for key, value in layer.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, origin, path, origins)
        else:
            base[key] = copy.deepcopy(value)
            origins[path] = origin


def merge_maps(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """helm's MergeMaps (how -f files and JSON objects merge): maps merge, any other value of ``b`` replaces,
    a null included."""
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_maps(out[key], value)
        else:
            out[key] = value
    return out


def coalesce(chart: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """helm's CoalesceValues: the user's values over the chart's.

    Maps merge; any other user value replaces the chart's, even where the kinds differ. A null in the user's values
    removes the chart's key (so "--set key=null" deletes a default); a null for a key the chart does not have stays
    null, for the schema to judge. Below the top level a null over a default that is itself null stays, as helm 4
    keeps it; helm 3 removes that key, and the templates read a null and a missing key alike (tests/test_strvals.py).
    """
    out = copy.deepcopy(user)
    _coalesce_tables(out, chart, top=True)
    return out


def _coalesce_tables(dst: dict[str, Any], src: dict[str, Any], *, top: bool = False) -> None:
    for key, value in src.items():
        if key not in dst:
            dst[key] = copy.deepcopy(value)
        elif dst[key] is None:
            if top or value is not None:  # below the top, over a null default the null stays (helm 4; helm 3 drops it)
                del dst[key]
        elif isinstance(dst[key], dict) and isinstance(value, dict):
            _coalesce_tables(dst[key], value)
