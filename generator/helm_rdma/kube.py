"""Reading the cluster with the official `kubernetes` client (imported only here, only when a command needs it)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, NamedTuple

from .errors import RuntimeFailure
from .helmenv import HelmEnv

INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
LWS_GROUP_LABEL = "leaderworkerset.sigs.k8s.io/group-index"


class ClusterError(RuntimeFailure):
    """The cluster could not be reached or refused a request."""

    def __init__(self, *, action: str, reason: str) -> None:
        super().__init__(f"{action} failed: {reason}; check the kube context (--kube-context, KUBECONFIG) and access")


class GroupReadiness(NamedTuple):
    """How many pods of one serving group are ready."""

    group: int
    ready: int
    total: int
    leader_ready: bool


def release_pods(*, release: str, env: HelmEnv) -> tuple[str, list[dict[str, Any]]]:
    """The namespace used and the pods of ``release`` in it, as plain dicts.

    Raises:
        ClusterError: No kubeconfig, or the API server failed the request.
    """
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        api_client = config.new_client_from_config(config_file=env.kubeconfig, context=env.kube_context)
        namespace = env.namespace or _context_namespace(env)
    except (ConfigException, OSError) as exc:
        raise ClusterError(action="loading the kubeconfig", reason=str(exc)) from None
    selector = f"{INSTANCE_LABEL}={release}"
    try:
        listing = client.CoreV1Api(api_client).list_namespaced_pod(namespace, label_selector=selector)
    except client.ApiException as exc:
        raise ClusterError(action=f"listing pods with {selector} in namespace {namespace}",
                           reason=f"HTTP {exc.status} {exc.reason}") from None
    except Exception as exc:  # urllib3 connection errors and the like
        raise ClusterError(action=f"listing pods in namespace {namespace}", reason=str(exc)) from None
    pods = [api_client.sanitize_for_serialization(p) for p in listing.items]
    # Filter here too: a selector is a request, and some API servers (and fakes) ignore it.
    return namespace, [p for p in pods if p.get("metadata", {}).get("labels", {}).get(INSTANCE_LABEL) == release]


def _context_namespace(env: HelmEnv) -> str:
    from kubernetes import config

    contexts, active = config.list_kube_config_contexts(config_file=env.kubeconfig)
    chosen = next((c for c in contexts if c["name"] == env.kube_context), active) if env.kube_context else active
    return str((chosen or {}).get("context", {}).get("namespace") or "default")


def group_readiness(pods: Iterable[dict[str, Any]]) -> list[GroupReadiness]:
    """Readiness per serving group, from pods of a LeaderWorkerSet (group-index label) or of the StatefulSets
    (group = leader ordinal, or worker ordinal // (nodes - 1) with nodes from the pod's HELM_RDMA_NNODES)."""
    groups: dict[int, list[tuple[bool, bool]]] = defaultdict(list)
    for pod in pods:
        meta = pod.get("metadata", {})
        labels = meta.get("labels", {})
        leader = labels.get(COMPONENT_LABEL) == "leader"
        groups[_group_of(meta.get("name", ""), labels, pod, leader)].append((leader, _ready(pod)))
    return [
        GroupReadiness(group=g, ready=sum(r for _, r in members), total=len(members),
                       leader_ready=any(leader and r for leader, r in members))
        for g, members in sorted(groups.items())
    ]


def _group_of(name: str, labels: dict[str, str], pod: dict[str, Any], leader: bool) -> int:
    if LWS_GROUP_LABEL in labels:
        return int(labels[LWS_GROUP_LABEL])
    ordinal = int(name.rsplit("-", 1)[-1]) if name.rsplit("-", 1)[-1].isdigit() else 0
    if leader:
        return ordinal
    env = {e.get("name"): e.get("value") for c in pod.get("spec", {}).get("containers", []) for e in c.get("env", [])}
    nodes = int(env.get("HELM_RDMA_NNODES") or 2)
    return ordinal // max(nodes - 1, 1)


def _ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
