"""Listing, creating, reading and deleting the few kinds of object a release without helm needs, in the release's
namespace, with the official `kubernetes` client (imported only when called), as plain dicts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from helm_rdma.cluster.kube import _client_and_namespace, _failure, _status
from helm_rdma.helmenv import HelmEnv

LWS = ("leaderworkerset.x-k8s.io", "v1", "leaderworkersets")


def _calls(kind: str, api_client: Any) -> dict[str, Callable[..., Any]]:
    from kubernetes import client

    if kind == "LeaderWorkerSet":
        custom = client.CustomObjectsApi(api_client)
        group, version, plural = LWS
        return {
            "list": lambda ns, **kw: custom.list_namespaced_custom_object(group, version, ns, plural, **kw),
            "create": lambda ns, body: custom.create_namespaced_custom_object(group, version, ns, plural, body),
            "read": lambda name, ns: custom.get_namespaced_custom_object(group, version, ns, plural, name),
            "delete": lambda name, ns, **kw: custom.delete_namespaced_custom_object(group, version, ns, plural, name,
                                                                                    **kw),
        }
    api, suffix = {"ConfigMap": (client.CoreV1Api, "config_map"), "Pod": (client.CoreV1Api, "pod"),
                   "Job": (client.BatchV1Api, "job"), "StatefulSet": (client.AppsV1Api, "stateful_set")}[kind]
    bound = api(api_client)
    return {verb: getattr(bound, f"{verb}_namespaced_{suffix}") for verb in ("list", "create", "read", "delete")}


def _plain(api_client: Any, obj: Any) -> dict[str, Any]:
    return obj if isinstance(obj, dict) else dict(api_client.sanitize_for_serialization(obj))


def list_objects(*, kind: str, labels: dict[str, str], env: HelmEnv) -> tuple[str, list[dict[str, Any]]]:
    """The namespace used and the objects of ``kind`` there carrying every one of ``labels``.

    A LeaderWorkerSet kind the API server does not serve (no LWS operator) is an empty list.

    Raises:
        ClusterError: The API server cannot be reached or refuses.
    """
    api_client, namespace = _client_and_namespace(env)
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    try:
        listing = _plain(api_client, _calls(kind, api_client)["list"](namespace, label_selector=selector))
    except Exception as exc:
        if kind == "LeaderWorkerSet" and _status(exc) == 404:
            return namespace, []
        raise _failure(f"listing {kind}s with {selector} in namespace {namespace}", exc) from None
    items = [i if isinstance(i, dict) else _plain(api_client, i) for i in listing.get("items") or []]
    # Filter here too: a selector is a request, and some API servers (and fakes) ignore it.
    return namespace, [i for i in items
                       if all((i.get("metadata", {}).get("labels") or {}).get(k) == v for k, v in labels.items())]


def create_object(obj: dict[str, Any], *, env: HelmEnv) -> dict[str, Any]:
    """Create ``obj`` in the release's namespace.

    Raises:
        ClusterError: The API server refused it.
    """
    api_client, namespace = _client_and_namespace(env)
    kind, name = obj["kind"], obj["metadata"]["name"]
    body = {**obj, "metadata": {**obj["metadata"], "namespace": namespace}}
    try:
        return _plain(api_client, _calls(kind, api_client)["create"](namespace, body))
    except Exception as exc:
        raise _failure(f"creating {kind} {name} in namespace {namespace}", exc) from None


def read_object(*, kind: str, name: str, env: HelmEnv) -> dict[str, Any] | None:
    """An object of the release's namespace, or None when there is none.

    Raises:
        ClusterError: The API server cannot be reached or refuses.
    """
    api_client, namespace = _client_and_namespace(env)
    try:
        return _plain(api_client, _calls(kind, api_client)["read"](name, namespace))
    except Exception as exc:
        if _status(exc) == 404:
            return None
        raise _failure(f"reading {kind} {name} in namespace {namespace}", exc) from None


def delete_object(*, kind: str, name: str, env: HelmEnv) -> bool:
    """Delete an object of the release's namespace (a Job with its pods); False when there was none.

    Raises:
        ClusterError: The API server cannot be reached or refuses.
    """
    api_client, namespace = _client_and_namespace(env)
    try:
        _calls(kind, api_client)["delete"](name, namespace, propagation_policy="Background")
    except Exception as exc:
        if _status(exc) == 404:
            return False
        raise _failure(f"deleting {kind} {name} in namespace {namespace}", exc) from None
    return True
