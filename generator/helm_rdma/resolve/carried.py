"""The values a new chart must not quietly take back from the one it replaces.

An upgrade takes this run's flags and files alone (helm --reset-values), and a regeneration the recorded values files
and this run's flags: a value an earlier run was given and this one leaves out goes back to its default. For the
values that name what lives outside the chart that is an outage or a bill, not a tuning change: another model to
download, or the weights' volume to fill again; a served name clients no longer find; no token for a gated model; a
new random API key that refuses every client's key, or an API open to all; a gateway or network policy gone; a
network that uninstall no longer deletes (templates/job-deprovision.yaml renders only with
clusterNetwork.deleteOnUninstall).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from helm_rdma.contract import CREDENTIAL_VALUES
from helm_rdma.resolve.limits import leaves
from helm_rdma.resolve.overrides import origin_of
from helm_rdma.resolve.values import API_KEY_ORIGIN, Resolved
from helm_rdma.suggest import clip

CARRIED = ("model.name", "model.servedName", "model.hfTokenSecret", "model.storage.type", "model.storage.claimName",
           "model.storage.hostPath", "model.download.enabled", "api.allowUnauthenticated", "api.keySecret",
           "networkPolicy.apiFrom", "imagePullSecrets", "serviceAccount", "gateway.enabled", "gateway.hostnames",
           "gateway.parentRefs", "distributed.ray.authTokenSecret", "clusterNetwork")
# Defaults that move with the chart's versions: the provisioner's image, the node package mirror.
NOT_CARRIED = ("clusterNetwork.image", "clusterNetwork.oke.nodePackageRepository")
# A value follows from another the user may set instead: the API key Secret's name from api.allowUnauthenticated
# (resolve/values.py names one only while the API is authenticated), the served name from the model.
DECIDED_BY = {"api.keySecret.name": "api.allowUnauthenticated", "api.allowUnauthenticated": "api.keySecret.name",
              "model.servedName": "model.name"}
_ABSENT, _GONE = object(), object()  # a path whose map is gone; an entry its map lacks


def dropped_values(before: Mapping[str, Any], resolved: Resolved, *, model_given: bool, where: str) -> list[str]:
    """One line per ``CARRIED`` value of ``before`` that ``resolved`` changes without this run setting it (or what
    decides it; the model counts as set when --model was given): the key, its value ``where`` (such as "in the last
    revision") and now. An entry of a map the new values lack is a change; a key whose map the new chart no longer
    has is not. A value that may hold a credential is never shown."""
    dropped = []
    for key, old in leaves(before):
        if not _within(key, CARRIED) or _within(key, NOT_CARRIED) or _given(key, resolved, model_given):
            continue
        new = _at(resolved.values, key.split("."))
        if new is not _ABSENT and new != old:
            dropped.append(f"{key}: {_shown(key, old)} {where}, {_shown(key, new)} in this run")
    return dropped


def _given(key: str, resolved: Resolved, model_given: bool) -> bool:
    if model_given and key in ("model.name", "model.servedName"):
        return True
    return any(origin_of(k, resolved.origins) not in ("defaults", API_KEY_ORIGIN)
               for k in (key, DECIDED_BY.get(key, key)))


def _shown(key: str, value: Any) -> str:
    if value is _GONE:
        return "absent"
    if _within(key, CREDENTIAL_VALUES):
        return f"(set, {len(str(value))} characters, not shown)" if value else '""'
    return clip(json.dumps(value), 80)


def _within(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _at(values: Any, path: list[str]) -> Any:
    """The value at ``path``: ``_GONE`` for an entry its map lacks (a label dropped from a free-form map),
    ``_ABSENT`` for a path whose map is gone (the chart no longer has the key)."""
    for i, part in enumerate(path):
        if not isinstance(values, dict):
            return _ABSENT
        if part not in values:
            return _GONE if i == len(path) - 1 and i > 0 else _ABSENT
        values = values[part]
    return values
