"""The API key Secret helm-rdma names for a release whose values name none (resolve.values.api_key_secret_name):
`install` and `upgrade` create it with a random key when it is missing, and never touch one that exists, so a key
clients hold keeps working across upgrades. Nothing renders the key: the chart only names the Secret."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

from helm_rdma.cluster.kube import _client_and_namespace
from helm_rdma.errors import ClusterError
from helm_rdma.helmenv import HelmEnv

# Marks the Secrets helm-rdma created (helm does not manage them: `helm uninstall` keeps the key).
CREATED_BY_LABEL = ("app.kubernetes.io/created-by", "helm-rdma")
RELEASE_ANNOTATION = "helm-rdma.io/release"
KEY_BYTES = 32


@dataclass(frozen=True)
class ApiKeySecret:
    """The Secret holding a release's API key: its name and namespace, and whether this call created it."""

    name: str
    namespace: str
    key: str
    created: bool

    def read_command(self) -> str:
        """The kubectl command that prints the key."""
        return (f"kubectl -n {self.namespace} get secret {self.name} -o jsonpath='{{.data.{self.key}}}' | "
                "base64 -d")


def _status(exc: Exception) -> int | None:
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def _failed(action: str, exc: Exception) -> ClusterError:
    status = _status(exc)
    reason = f"HTTP {status} {getattr(exc, 'reason', '')}".strip() if status else str(exc)
    return ClusterError(action=action, reason=reason)


def _exists(core: Any, name: str, namespace: str) -> bool:
    try:
        core.read_namespaced_secret(name, namespace, _preload_content=False)
    except Exception as exc:
        if _status(exc) == 404:
            return False
        raise _failed(f"reading Secret {name} in namespace {namespace}", exc) from None
    return True


def _create_namespace(core: Any, namespace: str) -> None:
    try:
        core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    except Exception as exc:
        if _status(exc) != 409:  # created meanwhile, by helm or anyone
            raise _failed(f"creating namespace {namespace} (--create-namespace)", exc) from None


def ensure_api_key_secret(*, name: str, key: str, release: str, env: HelmEnv,
                          create_namespace: bool = False) -> ApiKeySecret:
    """Create Secret ``name`` in the release's namespace with a random ``key`` unless it exists; never rotate it.

    A Secret that exists, whatever it holds, is left as it is (the cluster checks report a missing key). Two installs
    at once both end with the one Secret the first created. ``create_namespace`` (helm's --create-namespace) creates
    a missing namespace first, as helm would.

    Raises:
        ClusterError: The API server cannot be reached or refuses.
    """
    from kubernetes import client

    api_client, namespace = _client_and_namespace(env)
    core = client.CoreV1Api(api_client)
    found = ApiKeySecret(name=name, namespace=namespace, key=key, created=False)
    if _exists(core, name, namespace):
        return found
    body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "labels": dict([CREATED_BY_LABEL]),
                         "annotations": {RELEASE_ANNOTATION: release}},
            "data": {key: base64.b64encode(secrets.token_urlsafe(KEY_BYTES).encode()).decode()}}
    created = _create(core, namespace, body, create_namespace=create_namespace)
    return ApiKeySecret(name=name, namespace=namespace, key=key, created=created)


def _create(core: Any, namespace: str, body: dict[str, Any], *, create_namespace: bool) -> bool:
    """Whether this call created the Secret (False: another install created it first, and theirs is kept)."""
    try:
        _create_secret(core, namespace, body)
    except _Exists:
        return False
    except _NoNamespace:
        if not create_namespace:
            raise ClusterError(action=f"creating Secret {body['metadata']['name']}",
                               reason=f"namespace {namespace} does not exist (pass --create-namespace, or create "
                               "it)") from None
        _create_namespace(core, namespace)
        return _create(core, namespace, body, create_namespace=False)
    return True


class _NoNamespace(Exception):
    pass


class _Exists(Exception):
    pass


def _create_secret(core: Any, namespace: str, body: dict[str, Any]) -> None:
    try:
        core.create_namespaced_secret(namespace, body)
    except Exception as exc:
        if _status(exc) == 409:
            raise _Exists from None
        if _status(exc) == 404:
            raise _NoNamespace from None
        raise _failed(f"creating Secret {body['metadata']['name']} in namespace {namespace}", exc) from None
