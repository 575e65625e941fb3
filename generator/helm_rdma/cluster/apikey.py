"""The API key Secret helm-rdma names for a release whose values name none (resolve.values.api_key_secret_name):
`install` and `upgrade` create it with a random key when it is missing, and never touch one that exists, so a key
clients hold keeps working across upgrades. Nothing renders the key: the chart only names the Secret."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, replace
from typing import Any

from helm_rdma.cluster.kube import _core, _failure, _status
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


def _create_namespace(core: Any, namespace: str) -> None:
    try:
        core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    except Exception as exc:
        if _status(exc) != 409:  # created meanwhile, by helm or anyone
            raise _failure(f"creating namespace {namespace} (--create-namespace)", exc) from None


def ensure_api_key_secret(*, name: str, key: str, release: str, env: HelmEnv,
                          create_namespace: bool = False) -> ApiKeySecret:
    """Create Secret ``name`` in the release's namespace with a random ``key`` unless it exists; never rotate it.

    A Secret that exists, whatever it holds, is left as it is (the cluster checks report a missing key). Two installs
    at once both end with the one Secret the first created. ``create_namespace`` (helm's --create-namespace) creates
    a missing namespace first, as helm would.

    Raises:
        ClusterError: The API server cannot be reached or refuses.
    """
    core, namespace = _core(env)
    found = ApiKeySecret(name=name, namespace=namespace, key=key, created=False)
    try:
        core.read_namespaced_secret(name, namespace, _preload_content=False)
        return found
    except Exception as exc:
        if _status(exc) != 404:
            raise _failure(f"reading Secret {name} in namespace {namespace}", exc) from None
    body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "labels": dict([CREATED_BY_LABEL]),
                         "annotations": {RELEASE_ANNOTATION: release}},
            "data": {key: base64.b64encode(secrets.token_urlsafe(KEY_BYTES).encode()).decode()}}
    return replace(found, created=_create(core, namespace, body, create_namespace=create_namespace))


def _create(core: Any, namespace: str, body: dict[str, Any], *, create_namespace: bool) -> bool:
    """Whether this call created the Secret (False: another install created it first, and theirs is kept)."""
    name = body["metadata"]["name"]
    try:
        core.create_namespaced_secret(namespace, body)
    except Exception as exc:
        if _status(exc) == 409:
            return False
        if _status(exc) != 404:
            raise _failure(f"creating Secret {name} in namespace {namespace}", exc) from None
        if not create_namespace:
            raise ClusterError(action=f"creating Secret {name}",
                               reason=f"namespace {namespace} does not exist (pass --create-namespace, or create "
                               "it)") from None
        _create_namespace(core, namespace)
        return _create(core, namespace, body, create_namespace=False)
    return True
