"""The values a new chart must not quietly take back from the one it replaces.

An upgrade takes this run's flags and files alone (helm --reset-values), and a regeneration the recorded values files
and this run's flags: a value an earlier run was given and this one leaves out goes back to its default. For the
values that name what lives outside the chart that is an outage or a bill, not a tuning change: another model to
download, no token for a gated one, a new random API key that refuses every client's key, a network that uninstall no
longer deletes (templates/job-deprovision.yaml renders only with clusterNetwork.deleteOnUninstall).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from helm_rdma.resolve.limits import leaves
from helm_rdma.resolve.overrides import origin_of
from helm_rdma.resolve.values import API_KEY_ORIGIN, Resolved

CARRIED = ("model.name", "model.hfTokenSecret", "api.allowUnauthenticated", "api.keySecret", "clusterNetwork")
# Defaults that move with the chart's versions: the provisioner's image, the node package mirror.
NOT_CARRIED = ("clusterNetwork.image", "clusterNetwork.oke.nodePackageRepository")
_ABSENT = object()


def dropped_values(before: Mapping[str, Any], resolved: Resolved, *, model_given: bool, where: str) -> list[str]:
    """One line per ``CARRIED`` value of ``before`` that ``resolved`` changes without this run setting it (the model
    counts as set when --model was given): the key, its value ``where`` (such as "on the deployed release") and now.
    A key the new chart no longer has is not a change."""
    dropped = []
    for key, old in leaves(before):
        if not _within(key, CARRIED) or _within(key, NOT_CARRIED):
            continue
        new = _at(resolved.values, key.split("."))
        given = model_given if key == "model.name" else \
            origin_of(key, resolved.origins) not in ("defaults", API_KEY_ORIGIN)
        if not given and new is not _ABSENT and new != old:
            dropped.append(f"{key}: {json.dumps(old)} {where}, {json.dumps(new)} in this run")
    return dropped


def _within(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _at(values: Any, path: list[str]) -> Any:
    for part in path:
        if not isinstance(values, dict) or part not in values:
            return _ABSENT
        values = values[part]
    return values
