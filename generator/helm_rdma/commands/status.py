"""`helm-rdma status`: helm's status of a release (or, with no Helm release, what its ConfigMap and workloads say),
how many pods of each group are ready, the last preflights recorded as Events, and the kept chart."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helm_rdma.cluster.groups import GroupState, group_states
from helm_rdma.cluster.kube import preflight_events, release_pods
from helm_rdma.cluster.objects import list_objects
from helm_rdma.cluster.release import helm_status, read_release, workload_states
from helm_rdma.contract import INSTANCE_LABEL
from helm_rdma.errors import ClusterError
from helm_rdma.helmenv import HelmEnv


@dataclass(frozen=True)
class StatusResult:
    """Where the release was read (helm, or the cluster's objects when there is no Helm release), its helm status
    (None without a Helm release), chart and app version, its workloads' and groups' readiness, the last preflights
    its leaders recorded as Events (they outlive a recreated group; ``preflights_note`` says why they could not be
    read), and where its chart is kept (None if not kept here)."""

    source: str
    helm_status: str | None
    namespace: str
    chart: str | None
    app_version: str | None
    managed_by: str | None
    workloads: tuple[dict[str, Any], ...]
    groups: tuple[GroupState, ...]
    kept_chart: Path | None
    preflights: tuple[dict[str, Any], ...] = ()
    preflights_note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The status as JSON-ready data (status -o json)."""
        return {
            "source": self.source, "namespace": self.namespace, "chart": self.chart, "appVersion": self.app_version,
            "managedBy": self.managed_by, "helmStatus": self.helm_status, "workloads": list(self.workloads),
            "groups": [{"group": g.group, "serving": g.serving, "ready": sum(p.ready for p in g.pods),
                        "pods": [{"name": p.name, "leader": p.leader, "node": p.node, "ready": p.ready,
                                  "step": p.step, "detail": p.detail, "restarts": p.restarts} for p in g.pods]}
                       for g in self.groups],
            "serving": bool(self.groups) and all(g.serving for g in self.groups),
            "preflights": list(self.preflights), "preflightsNote": self.preflights_note or None,
            "keptChart": str(self.kept_chart) if self.kept_chart else None,
        }


def status(*, release: str, env: HelmEnv) -> StatusResult:
    """Status of ``release``, from helm when it knows the release, else from the cluster's objects.

    Raises:
        HelmCommandError: helm status failed for another reason than an unknown release (no cluster).
        NoReleaseError: Neither a Helm release nor the release's ConfigMap.
        ClusterError: The pods could not be listed.
    """
    chart = app_version = managed_by = None
    helm_says = helm_status(release=release, env=env)
    if helm_says is None:
        _, found = read_release(release=release, env=env)
        chart, app_version, managed_by = found.chart, found.app_version, found.managed_by
    namespace, pods = release_pods(release=release, env=env)
    workloads = []
    for kind in ("LeaderWorkerSet", "StatefulSet"):
        try:
            workloads += workload_states(list_objects(kind=kind, labels={INSTANCE_LABEL: release}, env=env)[1])
        except ClusterError:  # no right to list them: the pods say enough
            continue
    try:
        preflights, note = tuple(preflight_events(release=release, env=env)), ""
    except ClusterError as exc:  # no right to list events: the rest of the status stands
        preflights, note = (), str(exc)
    cache = env.chart_cache(release)
    return StatusResult(source="helm" if helm_says is not None else "cluster", helm_status=helm_says,
                        namespace=namespace, chart=chart, app_version=app_version, managed_by=managed_by,
                        workloads=tuple(workloads), groups=tuple(group_states(pods)),
                        kept_chart=cache if cache.is_dir() else None, preflights=preflights,
                        preflights_note=note)
