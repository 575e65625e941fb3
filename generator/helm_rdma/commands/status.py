"""`helm-rdma status`: helm's status of a release, how many pods of each group are ready, and the kept chart."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ..groups import GroupState, group_states
from ..helm import run_helm
from ..helmenv import HelmEnv
from ..kube import release_pods


class StatusResult(NamedTuple):
    """The release's helm status, its groups' readiness and where its chart is kept (None if not kept here)."""

    helm_status: str
    namespace: str
    groups: tuple[GroupState, ...]
    chart: Path | None


def status(*, release: str, env: HelmEnv) -> StatusResult:
    """Status of ``release``.

    Raises:
        HelmCommandError: helm status failed (no such release, no cluster).
        ClusterError: The pods could not be listed.
    """
    helm_status = run_helm(["status", release, *env.global_flags()]).stdout
    namespace, pods = release_pods(release=release, env=env)
    cache = env.chart_cache(release)
    return StatusResult(helm_status=helm_status, namespace=namespace, groups=tuple(group_states(pods)),
                        chart=cache if cache.is_dir() else None)
