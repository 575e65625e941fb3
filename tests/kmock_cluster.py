"""kmock's Kubernetes emulator on a background event loop, with a kubeconfig pointing at it: the real `kubernetes`
client talks to it over a real socket.

kmock serves no pod logs (a GET on pods/NAME/log answers with the pod object), so Cluster adds one kmock reaction on
the `log` subresource that answers as the API server does: the log's bytes, or, for a container instance with no
log, a 400 Status with the kubelet's message ("previous terminated container %q in pod %q not found",
pkg/kubelet/kubelet_pods.go). Nothing else about kmock changes.

Objects of the kinds in RESOURCES can be served (Namespaces, Secrets, Deployments, CRDs and Multus
NetworkAttachmentDefinitions too, for `doctor --cluster`), `/version/` answers as `/version` does (the official client
asks for the former), and a GET of /api/v1/namespaces/NAME answers with that Namespace object (kmock's URL parser takes
NAME for the namespace of a request, not for an object); ``forbidden`` resources answer every request with 403, as an
API server does to a user RBAC does not allow. With ``tls`` (a directory; see self_signed) it listens on HTTPS with a
self-signed certificate for 127.0.0.1, as a pod's in-cluster client sees the API server; ``requests`` lists what
came in.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import re
import ssl
import threading
from pathlib import Path
from typing import Any

import aiohttp.test_utils
import kmock
import yaml

LWS = "leaderworkerset.x-k8s.io/v1/leaderworkersets"
NAD = "k8s.cni.cncf.io/v1/network-attachment-definitions"
RESOURCES = {"Pod": "v1/pods", "Node": "v1/nodes", "ConfigMap": "v1/configmaps", "StatefulSet": "apps/v1/statefulsets",
             "LeaderWorkerSet": LWS, "Namespace": "v1/namespaces", "Secret": "v1/secrets",
             "Deployment": "apps/v1/deployments", "Job": "batch/v1/jobs",
             "CustomResourceDefinition": "apiextensions.k8s.io/v1/customresourcedefinitions",
             "NetworkAttachmentDefinition": NAD, "Event": "v1/events"}
# Resources kmock must be told of to list them while it holds none (it learns the others from the objects put).
DECLARED = {LWS: ("LeaderWorkerSet", "leaderworkerset"), "batch/v1/jobs": ("Job", "job"),
            "apps/v1/statefulsets": ("StatefulSet", "statefulset"), "v1/configmaps": ("ConfigMap", "configmap"),
            "v1/events": ("Event", "event"), "v1/pods": ("Pod", "pod"), "v1/nodes": ("Node", "node")}
CLUSTER_SCOPED = {"v1/nodes"}


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for IP 127.0.0.1 and its key, written as ca.crt and tls.key in ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kmock")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    crt, pem = directory / "ca.crt", directory / "tls.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


def _tls_server(context: ssl.SSLContext) -> type[aiohttp.test_utils.RawTestServer]:
    class TlsServer(aiohttp.test_utils.RawTestServer):
        async def start_server(self, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any) -> None:
            await super().start_server(loop=loop, ssl=context, **kwargs)
    return TlsServer


class Cluster:
    """kmock's Kubernetes emulator on a background event loop, with a kubeconfig pointing at it."""

    def __init__(self, objects: list[dict[str, Any]], kubeconfig: Path,
                 logs: dict[tuple[str, str, bool], bytes | int] | None = None,
                 forbidden: tuple[str, ...] = (), tls: Path | None = None) -> None:
        """``logs`` maps (pod, container, previous) to the log's bytes, or to an HTTP status to fail with;
        ``forbidden`` names resources (as in RESOURCES' values) that answer 403; ``tls``, a directory for
        self_signed's files, serves HTTPS."""
        self.objects, self.kubeconfig, self.logs = objects, kubeconfig, logs or {}
        self.forbidden, self.tls = forbidden, tls
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: self._loop.run_until_complete(self._serve()), daemon=True)

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server_cls = aiohttp.test_utils.RawTestServer
        if self.tls is not None:
            crt, pem = self_signed(self.tls)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(crt, pem)
            server_cls = _tls_server(context)
        async with kmock.KubernetesEmulator() as k8s, kmock.Server(k8s, server_cls=server_cls) as server:
            self.port = server.port
            for resource, (kind, singular) in DECLARED.items():
                k8s.resources[resource] = {"kind": kind, "namespaced": resource not in CLUSTER_SCOPED,
                                           "singular": singular,
                                           "verbs": ["get", "list", "create", "update", "patch", "delete"]}
            self._k8s = k8s
            k8s[kmock.subresource("log")] << self._serve_log
            k8s["get /version/"] << k8s._serve_server_version  # the path the Python client asks (VersionApi)
            k8s["get", re.compile(r"/api/v1/namespaces/[^/]+")] << self._serve_namespace
            for resource in self.forbidden:
                k8s[kmock.resource(resource)] << self._refuse
            for obj in self.objects:
                self._put(obj)
            self.kubeconfig.write_text(yaml.safe_dump({
                "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
                "clusters": [{"name": "kmock", "cluster": {
                    "server": str(server.url).rstrip("/"),
                    **({"certificate-authority": str(self.tls / "ca.crt")} if self.tls else {})}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "u", "namespace": "ml"}}],
            }))
            self._ready.set()
            await self._stop.wait()

    def _put(self, obj: dict[str, Any]) -> None:
        self._k8s.objects[RESOURCES[obj["kind"]], obj["metadata"].get("namespace"), obj["metadata"]["name"]] = obj

    def _serve_log(self, request: kmock.Request) -> bytes:
        """GET pods/NAME/log?container=C&previous=true (the Python client sends previous=True)."""
        container = request.params.get("container", "")
        previous = request.params.get("previous", "").lower() == "true"
        found = self.logs.get((request.name or "", container, previous))
        if isinstance(found, bytes):
            tail = request.params.get("tailLines")
            return b"".join(found.splitlines(keepends=True)[-int(tail):]) if tail else found
        if isinstance(found, int):
            raise kmock.KubernetesError(status=found, reason="Forbidden" if found == 403 else "InternalError",
                                        message=f"pods \"{request.name}\" log: refused ({found})")
        message = (f'previous terminated container "{container}" in pod "{request.name}" not found' if previous else
                   f'container "{container}" in pod "{request.name}" is waiting to start: ContainerCreating')
        raise kmock.KubernetesError(status=400, reason="BadRequest", message=message)

    def _serve_namespace(self, request: kmock.Request) -> dict[str, Any]:
        if "v1/namespaces" in self.forbidden:
            self._refuse(request)
        found = [obj for (resource, _, name), obj in list(self._k8s.objects.items())
                 if resource == "v1/namespaces" and name == request.namespace and not obj.deleted]
        if not found:
            raise kmock.KubernetesError(status=404, reason="NotFound",
                                        message=f'namespaces "{request.namespace}" not found')
        return dict(found[0].raw)

    @staticmethod
    def _refuse(request: kmock.Request) -> bytes:
        raise kmock.KubernetesError(status=403, reason="Forbidden", message=f'{request.resource} is forbidden: '
                                    'User "u" cannot access it')

    def put(self, obj: dict[str, Any]) -> None:
        """Create or replace an object while the emulator runs (from the test's thread)."""
        done = threading.Event()
        self._loop.call_soon_threadsafe(lambda: (self._put(obj), done.set()))
        assert done.wait(10)

    def names(self, resource: str, namespace: str | None) -> list[str]:
        """Names of the objects of one resource the emulator holds now (kmock keeps deleted ones, without a raw form)."""
        return sorted(n for r, ns, n in list(self._k8s.objects.keys()) if r == resource and ns == namespace
                      and self._exists(r, ns, n))

    def _exists(self, resource: str, namespace: str | None, name: str) -> bool:
        try:
            _ = self._k8s.objects[resource, namespace, name].raw
        except (KeyError, ValueError):  # gone, or soft-deleted
            return False
        return True

    def requests(self) -> list[kmock.Request]:
        """Every request the emulator received, in order (method, path, headers, data)."""
        return list(self._k8s._requests)

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any]:
        """An object as the emulator holds it now."""
        return dict(self._k8s.objects[resource, namespace, name].raw)

    def __enter__(self) -> Cluster:
        self._thread.start()
        assert self._ready.wait(20), "kmock did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
