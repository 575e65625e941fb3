"""A release as the cluster holds it, with or without a Helm release: Argo CD renders the chart with `helm template`
and applies the objects itself, so `helm status`, `helm get values` and `helm test` know nothing of it.

Every chart renders a ConfigMap labelled ``app.kubernetes.io/component=release`` (templates/configmap-release.yaml)
holding the values it was rendered with and its `helm test` objects, rendered by that same chart. Reading them back
gives status and verify what helm would: the values without `helm get values`, and the test Job and Pod without the
chart or `helm test`, of exactly the version that runs.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import yaml

from helm_rdma.cluster.objects import list_objects
from helm_rdma.contract import COMPONENT_LABEL, INSTANCE_LABEL, RELEASE_COMPONENT, TEST_TEMPLATES
from helm_rdma.errors import HelmCommandError, HelmNotFoundError, NoReleaseError, RuntimeFailure
from helm_rdma.helm import run_helm
from helm_rdma.helmenv import HelmEnv

HOOK_WEIGHT = "helm.sh/hook-weight"
# Argo CD marks what it applies: the tracking annotation (the default since Argo CD 3.0) or the instance label.
ARGO_TRACKING = "argocd.argoproj.io/tracking-id"


class ClusterRelease(NamedTuple):
    """What the release's ConfigMap says."""

    name: str  # the ConfigMap's
    chart: str  # NAME-VERSION
    app_version: str
    values: dict[str, Any]
    tests: tuple[dict[str, Any], ...]  # the test objects, in hook-weight order
    managed_by: str | None  # Argo CD's tracking id, when Argo CD applied it


def helm_status(*, release: str, env: HelmEnv) -> str | None:
    """`helm status` of ``release``, or None when helm knows no such release (or there is no helm to ask).

    Raises:
        HelmCommandError: helm failed for another reason (no cluster, no access).
    """
    return _of_release(["status", release, *env.global_flags()])


def deployed_values(*, release: str, env: HelmEnv) -> dict[str, Any] | None:
    """The values the deployed revision of ``release`` runs with (`helm get values --all`: the chart's values and
    the user-supplied ones, merged), or None when helm knows no such release (or there is no helm to ask).

    Raises:
        HelmCommandError: helm failed for another reason (no cluster, no access).
    """
    found = _of_release(["get", "values", release, "--all", "--output", "json", *env.global_flags()])
    return None if found is None else dict(json.loads(found) or {})


def last_deployed(*, release: str, env: HelmEnv) -> int | None:
    """The last revision of ``release`` that ran (status deployed or superseded), what helm's own --atomic rolls back
    to (pkg/action/upgrade.go, failRelease); 0 when helm holds revisions but none ran, None when it holds none (or
    there is no helm to ask).

    Raises:
        HelmCommandError: helm failed for another reason (no cluster, no access).
    """
    found = _of_release(["history", release, "--max", "256", "--output", "json", *env.global_flags()])
    if found is None:
        return None
    deployed = [int(r["revision"]) for r in json.loads(found) or [] if r.get("status") in ("deployed", "superseded")]
    return max(deployed, default=0)


def _of_release(args: list[str]) -> str | None:
    """What helm prints for ``args`` about one release; None when there is no helm or no such release."""
    try:
        return run_helm(args).stdout
    except HelmNotFoundError:
        return None
    except HelmCommandError as exc:
        if _no_release(exc):
            return None
        raise


def _no_release(exc: HelmCommandError) -> bool:
    """Whether helm failed because it holds no revision of the release: its storage drivers' "release: not found"
    (pkg/storage/driver ErrReleaseNotFound), or "no revision for release" when a driver's query finds an empty
    history (pkg/storage/storage.go, Storage.Last)."""
    stderr = exc.stderr.lower()
    return "not found" in stderr or "no revision for release" in stderr


def parse_release(config_map: dict[str, Any]) -> ClusterRelease:
    """Read a release ConfigMap (as the API returns it).

    Raises:
        RuntimeFailure: Its values are not JSON, or a test object is not YAML (a ConfigMap edited by hand).
    """
    meta, data = config_map.get("metadata", {}), config_map.get("data") or {}
    name = str(meta.get("name", ""))
    try:
        values = json.loads(data.get("values.json") or "{}")
        tests = [yaml.safe_load(data[key]) for key in TEST_TEMPLATES if data.get(key)]
    except (ValueError, yaml.YAMLError) as exc:
        raise RuntimeFailure(f"ConfigMap {name} does not hold what the chart renders ({exc}); sync the release "
                             "again (Argo CD: sync; Flux: reconcile)") from None
    tests.sort(key=lambda t: int(((t.get("metadata") or {}).get("annotations") or {}).get(HOOK_WEIGHT, "0")))
    tracking = (meta.get("annotations") or {}).get(ARGO_TRACKING)
    return ClusterRelease(name=name, chart=str(data.get("chart", "")), app_version=str(data.get("appVersion", "")),
                          values=values if isinstance(values, dict) else {}, tests=tuple(tests),
                          managed_by=f"Argo CD ({tracking})" if tracking else None)


def read_release(*, release: str, env: HelmEnv) -> tuple[str, ClusterRelease]:
    """The namespace used and the release as its ConfigMap says.

    Raises:
        NoReleaseError: No such ConfigMap.
        ClusterError: The cluster could not be read.
    """
    namespace, found = list_objects(kind="ConfigMap", labels={INSTANCE_LABEL: release,
                                                               COMPONENT_LABEL: RELEASE_COMPONENT}, env=env)
    if not found:
        raise NoReleaseError(release=release, namespace=namespace)
    return namespace, parse_release(sorted(found, key=lambda c: str(c["metadata"].get("name")))[0])


def workload_states(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line of state per serving workload (LeaderWorkerSet or StatefulSet): kind, name, groups or pods ready."""
    out = []
    for obj in objects:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        wanted = int(spec.get("replicas", 1))
        out.append({"kind": obj.get("kind", ""), "name": obj.get("metadata", {}).get("name", ""),
                    "replicas": wanted, "ready": int(status.get("readyReplicas", 0) or 0),
                    "updated": int(status.get("updatedReplicas", 0) or 0)})
    return out
