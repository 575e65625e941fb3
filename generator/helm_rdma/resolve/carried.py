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
from collections.abc import Iterator, Mapping
from typing import Any

from helm_rdma.contract import CREDENTIAL_VALUES
from helm_rdma.resolve.overrides import origin_of
from helm_rdma.resolve.values import API_KEY_ORIGIN, Resolved, values_schema
from helm_rdma.suggest import clip

CARRIED = ("model.name", "model.servedName", "model.hfTokenSecret", "model.storage.type", "model.storage.claimName",
           "model.storage.hostPath", "model.download.enabled", "api.allowUnauthenticated", "api.keySecret",
           "networkPolicy.apiFrom", "imagePullSecrets", "serviceAccount", "gateway.enabled", "gateway.hostnames",
           "gateway.parentRefs", "distributed.ray.authTokenSecret", "clusterNetwork")
# Defaults that move with the chart's versions: the provisioner's image, the node package mirror.
NOT_CARRIED = ("clusterNetwork.image", "clusterNetwork.oke.nodePackageRepository")
# A value follows from another the user may set instead: the API key Secret's name from api.allowUnauthenticated
# (resolve/values.py names one only while the API is authenticated), and back.
DECIDED_BY = {"api.keySecret.name": "api.allowUnauthenticated", "api.allowUnauthenticated": "api.keySecret.name"}
_ABSENT, _GONE = object(), object()  # a key the new chart no longer has; an entry a free-form map no longer holds


def dropped_values(before: Mapping[str, Any], resolved: Resolved, *, model_given: bool, where: str) -> list[str]:
    """One line per ``CARRIED`` value of ``before`` that ``resolved`` changes without this run setting it (or
    changing what decides it; the model counts as set when --model was given): the key, its value ``where`` (such as
    "in the last revision") and now. An entry a free-form map (labels, annotations) no longer holds is a change; a
    key the chart's schema no longer has is not. A value that may hold a credential is never shown."""
    schema = values_schema()
    dropped = []
    for path, old in _leaves(before):
        key = ".".join(path)
        if not _within(key, CARRIED) or _within(key, NOT_CARRIED) or _given(key, before, resolved, model_given):
            continue
        new = _at(resolved.values, path, schema)
        if new is not _ABSENT and new != old:
            dropped.append(f"{key}: {_shown(key, old)} {where}, {_shown(key, new)} in this run")
    return dropped


def _given(key: str, before: Mapping[str, Any], resolved: Resolved, model_given: bool) -> bool:
    """Whether this run set ``key``, or changed the value that decides it."""
    if model_given and key in ("model.name", "model.servedName"):
        return True
    if origin_of(key, resolved.origins) not in ("defaults", API_KEY_ORIGIN):
        return True
    decider = DECIDED_BY.get(key)
    if decider is None or origin_of(decider, resolved.origins) in ("defaults", API_KEY_ORIGIN):
        return False
    path = tuple(decider.split("."))
    return bool(_at(before, path, {}) != _at(resolved.values, path, {}))


def _shown(key: str, value: Any) -> str:
    if value is _GONE:
        return "absent"
    if _within(key, CREDENTIAL_VALUES):
        return f"(set, {len(str(value))} characters, not shown)" if value else '""'
    return clip(json.dumps(value), 80)


def _within(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _leaves(values: Mapping[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every leaf of ``values`` by its path of keys (a label key may hold dots); a list or an empty map is a leaf."""
    for name, value in values.items():
        here = (*path, str(name))
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, here)
        else:
            yield here, value


def _at(values: Any, path: tuple[str, ...], schema: Mapping[str, Any]) -> Any:
    """The value at ``path``; ``_GONE`` for an entry its free-form map lacks (one with no ``properties`` in
    ``schema``), ``_ABSENT`` for a key the chart no longer has."""
    node: Any = schema
    for i, part in enumerate(path):
        if not isinstance(values, dict):
            return _ABSENT
        if part not in values:
            free = isinstance(node, Mapping) and "properties" not in node
            return _GONE if free and i == len(path) - 1 and i > 0 else _ABSENT
        values = values[part]
        node = (node.get("properties") or {}).get(part) if isinstance(node, Mapping) else None
    return values


def renamed_model(before: Mapping[str, Any], resolved: Resolved) -> str | None:
    """A line saying the served model name changes (--model with another alias renames it): clients send that name,
    and the old one is answered 404 from then on; None when it stays."""
    old = (before.get("model") or {}).get("servedName")
    new = resolved.values["model"]["servedName"]
    if old is None or old == new:
        return None
    return (f"model.servedName: {json.dumps(old)} in the last revision, {json.dumps(new)} in this run: clients must "
            f"send \"model\": {json.dumps(new)} from then on (vLLM answers the old name 404); keep it with --set "
            f"model.servedName={old}")
