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

    def __init__(self, objects: list[dict[str, Any]], kubeconfig: Path) -> None:
        self.objects, self.kubeconfig = objects, kubeconfig
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: self._loop.run_until_complete(self._serve()), daemon=True)

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with kmock.KubernetesEmulator() as k8s, kmock.Server(k8s) as server:
            k8s.resources[LWS] = {"kind": "LeaderWorkerSet", "namespaced": True, "singular": "leaderworkerset",
                                  "verbs": ["get", "list", "create", "update", "patch", "delete"]}
            for obj in self.objects:
                resource = RESOURCES[obj["kind"]]
                k8s.objects[resource, obj["metadata"].get("namespace"), obj["metadata"]["name"]] = obj
            self.kubeconfig.write_text(yaml.safe_dump({
                "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
                "clusters": [{"name": "kmock", "cluster": {"server": str(server.url).rstrip("/")}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "u", "namespace": "ml"}}],
            }))
            self._k8s = k8s
            self._ready.set()
            await self._stop.wait()

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
