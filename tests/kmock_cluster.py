"""kmock's Kubernetes emulator on a background event loop, with a kubeconfig pointing at it: the real `kubernetes`
client talks to it over a real socket."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import kmock
import yaml

LWS = "leaderworkerset.x-k8s.io/v1/leaderworkersets"
RESOURCES = {"Pod": "v1/pods", "Node": "v1/nodes", "ConfigMap": "v1/configmaps", "StatefulSet": "apps/v1/statefulsets",
             "LeaderWorkerSet": LWS}


class Cluster:
    """kmock's Kubernetes emulator on a background event loop, with a kubeconfig pointing at it."""

    def __init__(self, objects: list[dict[str, Any]], kubeconfig: Path,
                 logs: dict[tuple[str, str], str] | None = None) -> None:
        """``logs`` maps (pod, container) to its log; (pod, container + ":previous") to the previous instance's.
        kmock has no pod logs of its own: the log subresource is answered from this mapping (400, as the API
        server answers for a container with no log, when absent)."""
        self.objects, self.kubeconfig = objects, kubeconfig
        self.logs: dict[tuple[str, str], str] = dict(logs or {})
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: self._loop.run_until_complete(self._serve()), daemon=True)

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with kmock.KubernetesEmulator() as k8s, kmock.Server(k8s) as server:
            k8s.resources[LWS] = {"kind": "LeaderWorkerSet", "namespaced": True, "singular": "leaderworkerset",
                                  "verbs": ["get", "list", "create", "update", "patch", "delete"]}
            self._k8s = k8s
            for obj in self.objects:
                self._put(obj)
            self.kubeconfig.write_text(yaml.safe_dump({
                "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
                "clusters": [{"name": "kmock", "cluster": {"server": str(server.url).rstrip("/")}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "u", "namespace": "ml"}}],
            }))
            self._ready.set()
            await self._stop.wait()

    def _put(self, obj: dict[str, Any]) -> None:
        namespace, name = obj["metadata"].get("namespace"), obj["metadata"]["name"]
        self._k8s.objects[RESOURCES[obj["kind"]], namespace, name] = obj
        if obj["kind"] == "Pod" and namespace is not None:
            self._k8s[f"get /api/v1/namespaces/{namespace}/pods/{name}/log"] << (
                lambda request, pod=name: self._log(pod, request))

    def _log(self, pod: str, request: Any) -> Any:
        container = request.params.get("container", "")
        previous = request.params.get("previous") in ("true", "True")
        text = self.logs.get((pod, container + (":previous" if previous else "")))
        if text is None:
            return kmock.Response(status=400, payload={"kind": "Status", "status": "Failure", "code": 400,
                                                       "message": f"container {container} has no log"})
        tail = request.params.get("tailLines")
        # an explicit status: kmock otherwise keeps the status of this reaction's previous answer
        return kmock.Response(status=200, payload="\n".join(text.splitlines()[-int(tail):]) + "\n" if tail else text)

    def put(self, obj: dict[str, Any]) -> None:
        """Create or replace an object while the emulator runs (from the test's thread)."""
        done = threading.Event()
        self._loop.call_soon_threadsafe(lambda: (self._put(obj), done.set()))
        assert done.wait(10)

    def names(self, resource: str, namespace: str | None) -> list[str]:
        """Names of the objects of one resource the emulator holds now."""
        return sorted(n for r, ns, n in list(self._k8s.objects.keys()) if r == resource and ns == namespace)

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
