"""Reading the cluster with the official `kubernetes` client (imported only here, only when a command needs it)."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from typing import Any, NamedTuple

import yaml

from helm_rdma.clock import Polling
from helm_rdma.contract import INSTANCE_LABEL, PREFLIGHT_EVENT_ANNOTATION
from helm_rdma.errors import ClusterError, InputError, LogUnavailable, NodesTimeout
from helm_rdma.helmenv import HelmEnv, KubeOverrides
from helm_rdma.logs.sources import LogSource, chunk_lines


def _api_client(env: HelmEnv) -> Any:
    """A client from the kubeconfig (or, inside a pod with none, the in-cluster service account), with helm's
    connection overrides over it (or alone, when they name the API server and there is no kubeconfig)."""
    return _overridden(_kubeconfig_client(env), env.overrides)


def _overridden(api_client: Any, overrides: KubeOverrides | None) -> Any:
    """What clientcmd does with genericclioptions' overrides (k8s.io/client-go tools/clientcmd
    client_config.go, getContext/getAuthInfo/getCluster merge the ConfigOverrides over the kubeconfig): the server,
    CA, TLS name and check replace the cluster's, a token the user's, and impersonation adds the headers the API
    server reads (Impersonate-User, Impersonate-Group: kubernetes.io/docs/reference/access-authn-authz/
    authentication/#user-impersonation)."""
    if overrides is None:
        return api_client

    def apply(c: Any) -> None:
        if overrides.api_server:
            c.host = overrides.api_server.rstrip("/")
        if overrides.ca_file:
            c.ssl_ca_cert = overrides.ca_file
        if overrides.insecure:
            c.verify_ssl = False
        if overrides.tls_server_name:
            c.tls_server_name = overrides.tls_server_name
        if overrides.token:
            c.api_key = {"BearerToken": f"Bearer {overrides.token}"}  # the key the client's auth settings read

    c = api_client.configuration
    apply(c)
    # The kubeconfig loader re-applies the kubeconfig's server, CA and token before every request, and installs its
    # hook again as it does (kubernetes/config/kube_config.py, _set_config's refresh_api_key_hook): the overrides
    # follow it, and so does this hook.
    hook = c.refresh_api_key_hook
    if hook is not None:
        def refreshed(conf: Any) -> None:
            hook(conf)
            apply(conf)
            conf.refresh_api_key_hook = refreshed

        c.refresh_api_key_hook = refreshed
    if overrides.as_user:
        api_client.set_default_header("Impersonate-User", overrides.as_user)
    if overrides.as_groups:
        if len(overrides.as_groups) > 1:  # one header per group, which the client's header map cannot hold
            raise InputError(f"HELM_KUBEASGROUPS (--kube-as-group) names {len(overrides.as_groups)} groups; "
                             "helm-rdma's cluster checks can impersonate one; fix: name one group, or bind the "
                             "rights to a user you impersonate with --kube-as-user")
        api_client.set_default_header("Impersonate-Group", overrides.as_groups[0])
    return api_client


def _kubeconfig_client(env: HelmEnv) -> Any:
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        if env.overrides and env.overrides.api_server and not kubeconfig_file(env):
            return client.ApiClient(client.Configuration())  # the overrides alone, as clientcmd does then
        if env.kubeconfig is None and env.kube_context is None and os.environ.get("KUBERNETES_SERVICE_HOST") \
                and not os.path.exists(os.path.expanduser(config.KUBE_CONFIG_DEFAULT_LOCATION)):
            config.load_incluster_config()
            return client.ApiClient()
        return config.new_client_from_config(config_file=env.kubeconfig, context=env.kube_context)
    except (ConfigException, OSError) as exc:
        raise ClusterError(action="loading the kubeconfig", reason=str(exc)) from None
    except (yaml.YAMLError, TypeError, AttributeError, KeyError, ValueError) as exc:
        # the client reads the file with PyYAML and walks it as dicts and lists: a NUL byte, `clusters: 5` or a
        # list where a map belongs surface as these, not as ConfigException
        path = env.kubeconfig or os.environ.get("KUBECONFIG") or config.KUBE_CONFIG_DEFAULT_LOCATION
        raise ClusterError(action=f"loading the kubeconfig {path}",
                           reason=f"it is not a valid kubeconfig ({type(exc).__name__}: {exc}); "
                                  "`kubectl config view` shows what kubectl makes of it") from None


class Connection(NamedTuple):
    """An API server that answered: the client, the namespace to act in, and where it points (for messages)."""

    api_client: Any
    namespace: str
    context: str
    server: str


def kubeconfig_found(env: HelmEnv) -> bool:
    """Whether there is a cluster to talk to at all: a kubeconfig file (KUBECONFIG's, else ~/.kube/config), helm's
    HELM_KUBEAPISERVER or, inside a pod, the in-cluster service account."""
    return kubeconfig_file(env) or bool(env.overrides and env.overrides.api_server) \
        or bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def kubeconfig_file(env: HelmEnv) -> bool:
    """Whether a kubeconfig file exists: KUBECONFIG's (any of its list), else ~/.kube/config."""
    if env.kubeconfig:
        return any(os.path.isfile(p) for p in env.kubeconfig.split(os.pathsep) if p)
    return os.path.isfile(os.path.expanduser("~/.kube/config"))


def connect(env: HelmEnv, *, timeout_seconds: float = 5) -> Connection:
    """A client whose API server answered `GET /version` within ``timeout_seconds``.

    Raises:
        ClusterError: No kubeconfig, or the API server did not answer (the message names the context and server).
    """
    from kubernetes import client
    from kubernetes.config.config_exception import ConfigException

    api_client, namespace = _client_and_namespace(env)
    server = str(api_client.configuration.host)
    try:
        context = env.kube_context or str((_context(env) or {}).get("name", ""))
    except (ConfigException, OSError):
        context = "HELM_KUBEAPISERVER" if env.overrides and env.overrides.api_server else "in-cluster"
    settings = copy.copy(api_client.configuration)
    settings.retries = 0  # one try: urllib3 would retry a silent server three times, each up to the timeout
    probe = client.ApiClient(settings)
    try:
        client.VersionApi(probe).get_code(_request_timeout=timeout_seconds)
    except Exception as exc:  # urllib3 connection errors, time-outs
        if _status(exc) not in (401, 403):  # an API server that refuses /version still answers
            raise _failure(f"reaching the API server {server} (kube context {context})", exc, _short_reason) from None
    finally:
        probe.close()
    return Connection(api_client=api_client, namespace=namespace, context=context, server=server)


def _status(exc: Exception) -> int | None:
    """The HTTP status of the API server's answer, or None when the request failed without one."""
    from kubernetes import client

    return exc.status if isinstance(exc, client.ApiException) else None


def _failure(action: str, exc: Exception, reason: Callable[[Exception], str] = str) -> ClusterError:
    """A request of ``action`` that failed: the API server's HTTP status and reason, else ``reason(exc)`` (urllib3
    connection errors and the like)."""
    from kubernetes import client

    if isinstance(exc, client.ApiException):
        return ClusterError(action=action, reason=f"HTTP {exc.status} {exc.reason}")
    return ClusterError(action=action, reason=reason(exc))


def _listed(api: Any, what: str, request: Callable[..., Any], *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """The items of the list ``request`` as plain dicts; a failure is a ClusterError of ``what``."""
    try:
        listing = request(*args, **kwargs)
    except Exception as exc:
        raise _failure(what, exc) from None
    return [api.api_client.sanitize_for_serialization(item) for item in listing.items]


def _short_reason(exc: BaseException) -> str:
    """The innermost cause of a urllib3 error (connection refused, timed out), not its whole chain."""
    reason: object = getattr(exc, "reason", None)
    while isinstance(reason, BaseException) and getattr(reason, "reason", None) is not None:
        reason = getattr(reason, "reason", None)
    text = str(reason if reason is not None else exc)
    return text.split(": ", 1)[-1] if text.startswith("<") else text


class NodeProgress(NamedTuple):
    """Nodes seen while waiting for them."""

    ready: int
    total: int
    wanted: int
    elapsed_seconds: float
    ready_ids: tuple[str, ...] = ()  # the Ready nodes' provider ids (on OKE the instance OCID, "oci://" dropped)


def wait_for_nodes(
    *,
    label: str,
    value: str,
    count: int,
    env: HelmEnv,
    polling: Polling,
    on_progress: Callable[[NodeProgress], None] = lambda _: None,
) -> NodeProgress:
    """Wait until ``count`` nodes labelled ``label=value`` are Ready, looking at ``polling``'s pace.

    Raises:
        NodesTimeout: The nodes are not Ready in time.
        ClusterError: The API server cannot be reached.
    """
    from kubernetes import client

    now, delay = polling.clock.now, polling.poll_seconds
    api = client.CoreV1Api(_api_client(env))
    start = now()
    selector = f"{label}={value}"
    while True:
        nodes = _listed(api, f"listing nodes with {selector}", api.list_node, label_selector=selector)
        nodes = [n for n in nodes if n.get("metadata", {}).get("labels", {}).get(label) == value]
        ready = sum(1 for n in nodes if is_ready(n))
        ids = tuple(str(n.get("spec", {}).get("providerID", "")).removeprefix("oci://") for n in nodes if is_ready(n))
        seen = NodeProgress(ready=ready, total=len(nodes), wanted=count, elapsed_seconds=now() - start,
                            ready_ids=tuple(i for i in ids if i))
        on_progress(seen)
        if ready >= count:
            return seen
        if seen.elapsed_seconds >= polling.timeout_seconds:
            raise NodesTimeout(selector=selector, progress=seen)
        polling.clock.sleep(delay)
        delay = polling.next_delay(delay)


def release_pods(*, release: str, env: HelmEnv) -> tuple[str, list[dict[str, Any]]]:
    """The namespace used and the pods of ``release`` in it, as plain dicts.

    Raises:
        ClusterError: No kubeconfig, or the API server failed the request.
    """
    api, namespace = _core(env)
    selector = f"{INSTANCE_LABEL}={release}"
    try:
        listing = api.list_namespaced_pod(namespace, label_selector=selector)
    except Exception as exc:  # the API server's answer names the selector; a connection error the namespace only
        where = f"with {selector} " if _status(exc) is not None else ""
        raise _failure(f"listing pods {where}in namespace {namespace}", exc) from None
    pods = [api.api_client.sanitize_for_serialization(p) for p in listing.items]
    # Filter here too: a selector is a request, and some API servers (and fakes) ignore it.
    return namespace, [p for p in pods if p.get("metadata", {}).get("labels", {}).get(INSTANCE_LABEL) == release]


def pod_log_sources(*, release: str, env: HelmEnv) -> tuple[str, list[LogSource]]:
    """The namespace used and one log source per container (init containers first) of every pod of ``release``,
    the previous instance before the current one. Nothing is read until a source's lines are iterated.

    Raises:
        ClusterError: No kubeconfig, or the pods could not be listed.
    """
    namespace, pods = release_pods(release=release, env=env)
    api, _ = _core(env)
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


def _core(env: HelmEnv) -> tuple[Any, str]:
    """The core API of the kube context's cluster, and the namespace to act in (see _client_and_namespace)."""
    from kubernetes import client

    api_client, namespace = _client_and_namespace(env)
    return client.CoreV1Api(api_client), namespace


def _log_lines(api: Any, namespace: str, pod: str, container: str, previous: bool) -> Iterator[str]:
    """The lines of one container's log, streamed from the API server.

    A 400 is what the API server answers for a container with no such log: for the previous instance that means
    there was none (nothing to read); for the current one, that it has not started (LogUnavailable, with why).
    """
    what = f"reading the log of {pod}/{container}{' (previous instance)' if previous else ''} in namespace {namespace}"
    try:
        response = api.read_namespaced_pod_log(pod, namespace, container=container, previous=previous,
                                               _preload_content=False)
    except Exception as exc:
        if _status(exc) == 400 and previous:
            return
        if _status(exc) == 400:
            raise LogUnavailable(_status_message(exc)) from None
        raise _failure(what, exc) from None
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


def pod_log(*, pod: str, container: str, env: HelmEnv, tail_lines: int | None = None,
            previous: bool = False) -> str | None:
    """The log of one container of ``pod`` in the release's namespace; None when there is none (yet).

    Raises:
        ClusterError: The API server cannot be reached or refuses.
    """
    api, namespace = _core(env)
    what = f"reading the log of {pod}/{container} in {namespace}"
    try:  # the client sends tailLines only when it is not None
        response = api.read_namespaced_pod_log(pod, namespace, container=container, previous=previous,
                                               tail_lines=tail_lines, _preload_content=False)
    except Exception as exc:
        if _status(exc) in (400, 404):  # no such pod, container not started, or no previous instance
            return None
        raise _failure(what, exc) from None
    return bytes(response.data).decode("utf-8", "replace")


def pod_events(*, pod: str, env: HelmEnv, limit: int = 10) -> list[str]:
    """The last ``limit`` Events about ``pod`` in the release's namespace, oldest first, as `kubectl describe pod`
    lists them: TYPE REASON MESSAGE (and how often): why it is not scheduled (FailedScheduling), why its image does
    not pull (Failed, BackOff), what the kubelet did.

    Raises:
        ClusterError: The API server cannot be reached or refuses.
    """
    api, namespace = _core(env)
    events = _listed(api, f"listing the events of pod {pod} in namespace {namespace}", api.list_namespaced_event,
                     namespace, field_selector=f"involvedObject.kind=Pod,involvedObject.name={pod}")
    # Filter here too: a field selector is a request, and some API servers (and fakes) ignore it.
    events = [e for e in events if e.get("involvedObject", {}).get("name") == pod
              and e.get("involvedObject", {}).get("kind", "Pod") == "Pod"]
    events.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime")
                                  or e.get("metadata", {}).get("creationTimestamp") or ""))
    lines = []
    for e in events[-limit:]:
        count = int(e.get("count") or 1)
        lines.append(f"{e.get('type', '')} {e.get('reason', '')}: {str(e.get('message', '')).strip()}"
                     + (f" (x{count})" if count > 1 else ""))
    return lines


def preflight_events(*, release: str, env: HelmEnv, limit: int = 5) -> list[dict[str, Any]]:
    """The summaries (files/preflight_event.py) of the last ``limit`` preflights of ``release`` recorded as Events,
    oldest first, each with the Event's ``pod`` and ``type``: they outlive the pods when a group is recreated, for the
    API server's event TTL (one hour by default).

    Raises:
        ClusterError: The API server cannot be reached or refuses.
    """
    api, namespace = _core(env)
    selector = f"{INSTANCE_LABEL}={release}"
    found = []
    for event in _listed(api, f"listing the events with {selector} in namespace {namespace}",
                         api.list_namespaced_event, namespace, label_selector=selector):
        meta = event.get("metadata", {})
        if (meta.get("labels") or {}).get(INSTANCE_LABEL) != release:
            continue  # a selector is a request, and some API servers (and fakes) ignore it
        try:
            summary = json.loads((meta.get("annotations") or {})[PREFLIGHT_EVENT_ANNOTATION])
        except (KeyError, TypeError, ValueError):
            continue
        if isinstance(summary, dict):
            found.append({**summary, "pod": event.get("involvedObject", {}).get("name", ""),
                          "type": event.get("type", "")})
    found.sort(key=lambda s: str(s.get("time") or ""))
    return found[-limit:]


def delete_pods(*, names: Iterable[str], env: HelmEnv) -> list[str]:
    """Delete pods of the release's namespace by name; returns those that existed.

    Raises:
        ClusterError: The API server cannot be reached or refuses.
    """
    api, namespace = _core(env)
    deleted = []
    for name in names:
        try:
            api.delete_namespaced_pod(name, namespace)
            deleted.append(name)
        except Exception as exc:
            if _status(exc) != 404:
                raise _failure(f"deleting pod {name} in {namespace}", exc) from None
    return deleted


def _client_and_namespace(env: HelmEnv) -> tuple[Any, str]:
    """An API client and the namespace to act in (HELM_NAMESPACE, else the kube context's, else default)."""
    from kubernetes.config.config_exception import ConfigException

    api_client = _api_client(env)
    try:
        context = _context(env) if not env.namespace and kubeconfig_file(env) else None
    except (ConfigException, OSError) as exc:
        raise ClusterError(action="loading the kubeconfig", reason=str(exc)) from None
    return api_client, env.namespace or str((context or {}).get("context", {}).get("namespace") or "default")


def _context(env: HelmEnv) -> dict[str, Any] | None:
    """The kubeconfig's context of ``env.kube_context``, else its current context."""
    from kubernetes import config

    contexts, active = config.list_kube_config_contexts(config_file=env.kubeconfig)
    chosen: dict[str, Any] | None = next((c for c in contexts if c["name"] == env.kube_context), active) \
        if env.kube_context else active
    return chosen


def is_ready(obj: Mapping[str, Any]) -> bool:
    """Whether a node's or pod's Ready condition is True."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class NetworkNode(NamedTuple):
    """A node of a cluster network and the pods on it that keep it from being removed ("namespace/name")."""

    name: str
    instance_id: str  # the node's providerID without "oci://": on OKE the instance's OCID
    pods: tuple[str, ...]


# Set by the kubelet on the API's copy (mirror) of a static pod; the pod lives as long as the node's manifest file.
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


def _holds_node(pod: dict[str, Any]) -> bool:
    """Whether a pod keeps its node from being removed: every pod does that has not finished, except the pods that
    belong to the node itself, as `kubectl drain --ignore-daemonsets` sees them (a DaemonSet's pod, a static pod's
    mirror)."""
    metadata = pod.get("metadata") or {}
    if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
        return False
    if MIRROR_ANNOTATION in (metadata.get("annotations") or {}):
        return False
    return not any(o.get("kind") == "DaemonSet" for o in metadata.get("ownerReferences") or [])


def network_nodes(*, label: tuple[str, str] | None, env: HelmEnv) -> list[NetworkNode]:
    """The nodes labelled ``label`` (every node when None) with the pods on each, in any namespace, that keep it
    from being removed (see _holds_node). A pod counts until it is gone: one terminating still holds its node.

    Raises:
        ClusterError: The API server cannot be reached or refuses (the provisioner's ClusterRole reads nodes and
            pods).
    """
    from kubernetes import client

    api = client.CoreV1Api(_api_client(env))
    selector = f"{label[0]}={label[1]}" if label else ""
    nodes = _listed(api, f"listing nodes{f' with {selector}' if selector else ''}", api.list_node,
                    label_selector=selector)
    # Filter here too: a selector is a request, and some API servers (and fakes) ignore it.
    if label:
        nodes = [n for n in nodes if (n.get("metadata", {}).get("labels") or {}).get(label[0]) == label[1]]
    found = []
    for node in sorted(nodes, key=lambda n: str(n["metadata"]["name"])):
        name = str(node["metadata"]["name"])
        pods = _listed(api, f"listing the pods of every namespace on node {name}", api.list_pod_for_all_namespaces,
                       field_selector=f"spec.nodeName={name}")
        holding = sorted(f"{p['metadata'].get('namespace')}/{p['metadata']['name']}" for p in pods
                         if p.get("spec", {}).get("nodeName") == name and _holds_node(p))
        found.append(NetworkNode(name=name, pods=tuple(holding),
                                 instance_id=str(node.get("spec", {}).get("providerID", "")).removeprefix("oci://")))
    return found


def cordon(*, names: Iterable[str], env: HelmEnv, unschedulable: bool = True) -> None:
    """Mark nodes unschedulable (as `kubectl cordon` does), or schedulable again.

    Raises:
        ClusterError: The API server cannot be reached or refuses.
    """
    from kubernetes import client

    api = client.CoreV1Api(_api_client(env))
    verb = "cordoning" if unschedulable else "uncordoning"
    for name in names:
        try:
            api.patch_node(name, {"spec": {"unschedulable": unschedulable}})
        except Exception as exc:
            raise _failure(f"{verb} node {name}", exc) from None
