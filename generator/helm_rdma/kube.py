"""Reading the cluster with the official `kubernetes` client (imported only here, only when a command needs it)."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from typing import Any, NamedTuple

from .errors import RuntimeFailure
from .helmenv import HelmEnv
from .logsources import LogSource, LogUnavailable, chunk_lines

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


def _api_client(env: HelmEnv) -> Any:
    """A client from the kubeconfig (or, inside a pod with none, the in-cluster service account)."""
    import os

    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    try:
        if env.kubeconfig is None and env.kube_context is None and os.environ.get("KUBERNETES_SERVICE_HOST") \
                and not os.path.exists(os.path.expanduser(config.KUBE_CONFIG_DEFAULT_LOCATION)):
            config.load_incluster_config()
            from kubernetes import client

            return client.ApiClient()
        return config.new_client_from_config(config_file=env.kubeconfig, context=env.kube_context)
    except (ConfigException, OSError) as exc:
        raise ClusterError(action="loading the kubeconfig", reason=str(exc)) from None


class NodeProgress(NamedTuple):
    """Nodes seen while waiting for them."""

    ready: int
    total: int
    wanted: int
    elapsed_seconds: float


def wait_for_nodes(
    *,
    label: str,
    value: str,
    count: int,
    env: HelmEnv,
    timeout_seconds: float = 1800,
    poll_seconds: float = 10,
    on_progress: Callable[[NodeProgress], None] = lambda _: None,
    clock: Any = None,
) -> NodeProgress:
    """Wait until ``count`` nodes labelled ``label=value`` are Ready.

    Raises:
        ClusterError: The API server cannot be reached, or the nodes are not Ready in time.
    """
    from kubernetes import client

    now = clock.now if clock else time.monotonic
    sleep = clock.sleep if clock else time.sleep
    api = client.CoreV1Api(_api_client(env))
    start = now()
    selector = f"{label}={value}"
    while True:
        try:
            listing = api.list_node(label_selector=selector)
        except client.ApiException as exc:
            raise ClusterError(action=f"listing nodes with {selector}", reason=f"HTTP {exc.status} {exc.reason}") \
                from None
        except Exception as exc:
            raise ClusterError(action=f"listing nodes with {selector}", reason=str(exc)) from None
        nodes = [api.api_client.sanitize_for_serialization(n) for n in listing.items]
        nodes = [n for n in nodes if n.get("metadata", {}).get("labels", {}).get(label) == value]
        ready = sum(1 for n in nodes if _ready(n))
        seen = NodeProgress(ready=ready, total=len(nodes), wanted=count, elapsed_seconds=now() - start)
        on_progress(seen)
        if ready >= count:
            return seen
        if seen.elapsed_seconds >= timeout_seconds:
            raise ClusterError(action=f"waiting for {count} Ready nodes with {selector}",
                               reason=f"{ready} Ready of {len(nodes)} after {seen.elapsed_seconds:.0f}s "
                                      "(do the nodes join the cluster? see their cloud-init and kubelet logs)")
        sleep(poll_seconds)


def release_pods(*, release: str, env: HelmEnv) -> tuple[str, list[dict[str, Any]]]:
    """The namespace used and the pods of ``release`` in it, as plain dicts.

    Raises:
        ClusterError: No kubeconfig, or the API server failed the request.
    """
    from kubernetes import client

    api_client, namespace = _client_and_namespace(env)
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


def pod_log_sources(*, release: str, env: HelmEnv) -> tuple[str, list[LogSource]]:
    """The namespace used and one log source per container (init containers first) of every pod of ``release``,
    the previous instance before the current one. Nothing is read until a source's lines are iterated.

    Raises:
        ClusterError: No kubeconfig, or the pods could not be listed.
    """
    namespace, pods = release_pods(release=release, env=env)
    api = _core_api(env)
    sources = []
    for pod in sorted(pods, key=lambda p: str(p.get("metadata", {}).get("name", ""))):
        name = str(pod.get("metadata", {}).get("name", ""))
        spec = pod.get("spec", {})
        containers = [c["name"] for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])]
        for container in containers:
            for previous in (True, False):
                sources.append(LogSource(pod=name, container=container, previous=previous,
                                         lines=partial(_log_lines, api, namespace, name, container, previous)))
    return namespace, sources


def _core_api(env: HelmEnv) -> Any:
    from kubernetes import client

    return client.CoreV1Api(_api_client(env))


def _log_lines(api: Any, namespace: str, pod: str, container: str, previous: bool) -> Iterator[str]:
    """The lines of one container's log, streamed from the API server.

    A 400 is what the API server answers for a container with no such log: for the previous instance that means
    there was none (nothing to read); for the current one, that it has not started (LogUnavailable, with why).
    """
    from kubernetes import client

    what = f"reading the log of {pod}/{container}{' (previous instance)' if previous else ''} in namespace {namespace}"
    try:
        response = api.read_namespaced_pod_log(pod, namespace, container=container, previous=previous,
                                               _preload_content=False)
    except client.ApiException as exc:
        if exc.status == 400:
            if previous:
                return
            raise LogUnavailable(_status_message(exc)) from None
        raise ClusterError(action=what, reason=f"HTTP {exc.status} {exc.reason}") from None
    except Exception as exc:  # urllib3 connection errors and the like
        raise ClusterError(action=what, reason=str(exc)) from None
    try:
        yield from chunk_lines(response.stream(64 * 1024))
    except Exception as exc:  # the connection broke while streaming
        raise ClusterError(action=what, reason=str(exc)) from None
    finally:
        response.release_conn()


def _status_message(exc: Any) -> str:
    """The message of the Status an ApiException carries, else its reason."""
    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return f"HTTP {exc.status} {exc.reason}"


def read_configmap(*, name: str, env: HelmEnv) -> dict[str, str] | None:
    """The data of ConfigMap ``name`` in the release's namespace, or None when there is none.

    Raises:
        ClusterError: The API server cannot be reached or refuses.
    """
    from kubernetes import client

    api_client, namespace = _client_and_namespace(env)
    try:
        found = client.CoreV1Api(api_client).read_namespaced_config_map(name, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise ClusterError(action=f"reading ConfigMap {name} in {namespace}", reason=f"HTTP {exc.status}") from None
    except Exception as exc:
        raise ClusterError(action=f"reading ConfigMap {name} in {namespace}", reason=str(exc)) from None
    return dict(found.data or {})


def scale_workload(*, kind: str, name: str, replicas: int | Mapping[str, int], env: HelmEnv) -> dict[str, int]:
    """Set the replicas of the release's serving workload (the LeaderWorkerSet, or the leader and worker
    StatefulSets): one count for all, or a count per object as an earlier call returned them.

    Returns:
        The replicas each object had before, by object name.

    Raises:
        ClusterError: The API server cannot be reached or refuses.
    """
    from kubernetes import client

    api_client, namespace = _client_and_namespace(env)
    custom, apps = client.CustomObjectsApi(api_client), client.AppsV1Api(api_client)
    names = [name] if kind == "LeaderWorkerSet" else [f"{name}-leader", f"{name}-worker"]
    before: dict[str, int] = {}
    for obj in names:
        target = replicas[obj] if isinstance(replicas, Mapping) else replicas
        try:
            if kind == "LeaderWorkerSet":
                lws = ("leaderworkerset.x-k8s.io", "v1", namespace, "leaderworkersets", obj)
                before[obj] = int(custom.get_namespaced_custom_object(*lws).get("spec", {}).get("replicas", 1))
                custom.patch_namespaced_custom_object(*lws, {"spec": {"replicas": target}})
            else:
                before[obj] = int(apps.read_namespaced_stateful_set(obj, namespace).spec.replicas or 0)
                apps.patch_namespaced_stateful_set(obj, namespace, {"spec": {"replicas": target}})
        except client.ApiException as exc:
            if exc.status == 404 and obj.endswith("-worker"):  # groups of one node have no workers
                continue
            raise ClusterError(action=f"scaling {obj} in {namespace}", reason=f"HTTP {exc.status} {exc.reason}") \
                from None
    return before


def _client_and_namespace(env: HelmEnv) -> tuple[Any, str]:
    """An API client and the namespace to act in (HELM_NAMESPACE, else the kube context's, else default)."""
    from kubernetes.config.config_exception import ConfigException

    api_client = _api_client(env)
    try:
        return api_client, env.namespace or _context_namespace(env)
    except (ConfigException, OSError) as exc:
        raise ClusterError(action="loading the kubeconfig", reason=str(exc)) from None


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
