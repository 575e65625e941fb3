"""Rendering the chart once per set of inputs, for tests that read rendered objects against their consumers' rules."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterator
from typing import Any

import yaml

from helm_rdma.commands.template import template
from helm_rdma.resolve.values import ChartRequest
from helm_rdma.resolve.valuesources import ValueSources

from .conftest import helm_path

KUBE_VERSION = "1.30.0"
# The values that turn the provisioning hook on (the --provision flags of install).
PROVISION = ("clusterNetwork.provision=true", "clusterNetwork.compartmentId=ocid1.compartment.oc1..c",
             "clusterNetwork.availabilityDomain=AD-1", "clusterNetwork.subnetId=ocid1.subnet.oc1..s",
             "clusterNetwork.imageId=ocid1.image.oc1..i",
             "clusterNetwork.image.repository=iad.ocir.io/example/helm-rdma-provisioner")
# One endpoint over groups that follow load (issue 27): the InferencePool and its picker behind a Gateway's route, and
# the ScaledObject of the LeaderWorkerSet on vLLM's gauges in Prometheus.
ROUTER_AUTOSCALING = ("router.enabled=true", "gateway.enabled=true", "gateway.parentRefs[0].name=inference-gateway",
                      "autoscaling.enabled=true", "autoscaling.maxReplicas=4",
                      "autoscaling.prometheusAddress=http://prometheus-operated.monitoring.svc:9090",
                      "monitoring.serviceMonitor.enabled=true")



def request(*, release: str = "llama405b", preset: str = "h100", files: tuple[Any, ...] = (),
            sets: tuple[str, ...] = (), sources: ValueSources | None = None, **fields: Any) -> ChartRequest:
    """The chart request of the CLI's ``RELEASE --preset PRESET -f FILE... --set SET...`` (``sources`` for the rest of
    the --set family, before ``files`` and ``sets``); ``fields`` are ChartRequest's other fields."""
    base = sources or ValueSources()
    values = dataclasses.replace(base, files=base.files + tuple(files), set=base.set + tuple(sets))
    return ChartRequest(release=release, preset=preset, sources=values, **fields)


@functools.lru_cache(maxsize=256)
def _render(release: str, preset: str, model: str | None, nodes: int | None, namespace: str,
            sets: tuple[str, ...], extra: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    previous = os.environ.get("HELM_BIN")
    os.environ["HELM_BIN"] = str(helm_path("helm4"))
    try:
        manifests = template(request(release=release, preset=preset, model=model, nodes=nodes, sets=sets),
                             namespace=namespace, helm_args=("--kube-version", KUBE_VERSION, *extra)).manifests
    finally:
        if previous is None:
            os.environ.pop("HELM_BIN", None)
        else:
            os.environ["HELM_BIN"] = previous
    return tuple(d for d in yaml.safe_load_all(manifests) if d)


def render(*sets: str, release: str = "llama405b", preset: str = "h100", model: str | None = None,
           nodes: int | None = None, namespace: str = "llm", upgrade: bool = False) -> list[dict[str, Any]]:
    """The documents `helm template` renders (helm 4; memoized: treat them as read-only)."""
    extra = ("--is-upgrade",) if upgrade else ()
    return list(_render(release, preset, model, nodes, namespace, tuple(sets), extra))


def of_kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] == kind]


def pod_specs(documents: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(object/role, pod spec) of every pod template: LeaderWorkerSet leader and worker, StatefulSets, Jobs, Pods."""
    for d in documents:
        name, spec = d["metadata"]["name"], d.get("spec", {})
        if d["kind"] == "LeaderWorkerSet":
            lwt = spec["leaderWorkerTemplate"]
            if "leaderTemplate" in lwt:
                yield f"{name}/leader", lwt["leaderTemplate"]["spec"]
            yield f"{name}/worker", lwt["workerTemplate"]["spec"]
        elif d["kind"] in ("StatefulSet", "Job", "Deployment", "DaemonSet"):
            yield name, spec["template"]["spec"]
        elif d["kind"] == "Pod":
            yield name, spec


def serving_pod_specs(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pod specs of the serving workload (LeaderWorkerSet or the leader and worker StatefulSets)."""
    return [spec for name, spec in pod_specs(documents)
            if "/" in name or name.endswith(("-leader", "-worker"))]


def hooks(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Hook objects by name."""
    return {d["metadata"]["name"]: d for d in documents
            if "helm.sh/hook" in (d["metadata"].get("annotations") or {})}
