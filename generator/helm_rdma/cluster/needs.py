"""What a release's rendered manifests ask of the cluster: the nodes its serving pods select and the resources they
request, the Multus networks and Secrets they name, the LeaderWorkerSet API they use, and the Pod Security level they
need. Pure functions over the objects `helm template` printed: the chart is the one home of these names, and this
module reads them from its output, never restating its helpers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from helm_rdma.contract import COMPONENT_LABEL, LEADER, SERVING_COMPONENTS

MULTUS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
HOOK_ANNOTATION = "helm.sh/hook"
PROVISIONER_COMPONENT = "provisioner"

# Pod Security Standards (kubernetes.io/docs/concepts/security/pod-security-standards): the levels from the most to
# the least restrictive, and what each admits.
LEVELS = ("restricted", "baseline", "privileged")
# "Capabilities (Baseline)": adding any capability beyond these is forbidden.
BASELINE_CAPABILITIES = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                                   "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
# "Volume Types (Restricted)": only these.
RESTRICTED_VOLUMES = frozenset({"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                                "projected", "secret"})


@dataclass(frozen=True)
class SecretRef:
    """A Secret a pod reads (and the key, when it reads one), with where it is used."""

    name: str
    key: str | None
    used_by: str
    optional: bool = False


# The kinds besides the LeaderWorkerSet that the chart renders and a CRD defines (the monitoring, Gateway API, router
# and autoscaling options): helm install fails with "no matches for kind" where their CRD is missing.
CRD_KINDS = ("ServiceMonitor", "PrometheusRule", "HTTPRoute", "InferencePool", "ScaledObject")


@dataclass(frozen=True)
class ClusterNeeds:
    """What the release's pods need from the cluster, as its rendered objects say."""

    release: str
    namespace: str
    pods: int  # serving pods of every group: one node each
    groups: int
    node_selector: tuple[tuple[str, str], ...]
    tolerations: tuple[Mapping[str, Any], ...]
    resources: tuple[tuple[str, int], ...]  # extended resources (a domain/name) each serving pod requests
    networks: tuple[str, ...]  # Multus networks as NAMESPACE/NAME
    secrets: tuple[SecretRef, ...]
    pod_security: str  # the least restrictive level some pod needs (LEVELS)
    pod_security_reasons: tuple[str, ...]
    lws_api: tuple[str, str] | None  # (group, version) of the LeaderWorkerSet, when the release has one
    custom_kinds: tuple[tuple[str, str, str], ...]  # (group, version, kind) of every other object a CRD defines
    route_timeouts: bool  # the HTTPRoute sets rules[].timeouts (Gateway API Standard channel v1.2 and later)
    cluster_network_label: tuple[str, str] | None  # (key, value) when the pods require it
    resource_roles: tuple[tuple[str, str], ...]  # resource -> gpu | rdma-vf | rdma-device
    provisions_nodes: bool  # a pre-install hook creates the nodes


def parse_manifests(text: str) -> list[dict[str, Any]]:
    """The objects of a multi-document YAML stream, as `helm template` prints it."""
    return [d for d in yaml.safe_load_all(text) if isinstance(d, dict) and d.get("kind")]


def cluster_needs(objects: Iterable[dict[str, Any]], *, release: str, namespace: str,
                  values: Mapping[str, Any]) -> ClusterNeeds:
    """Read what the pods of ``objects`` (one release's rendered manifests) need.

    ``values`` (the release's resolved values) only say what the rendered names are for: which node selector key
    is the cluster-network label (placement.clusterNetworkLabel.key; its value is read from the pods) and which
    extended resource is the GPU's, the VFs' or the RDMA device plugin's (to tell the right fix).
    """
    objects = list(objects)
    serving: list[tuple[str, dict[str, Any], int]] = []  # (object, pod template, pods from it)
    groups, lws_api = 0, None
    for obj in objects:
        kind, spec = obj["kind"], obj.get("spec") or {}
        name = f"{kind}/{obj.get('metadata', {}).get('name', '')}"
        if kind == "LeaderWorkerSet":
            lws_api = _group_version(obj)
            template = spec.get("leaderWorkerTemplate") or {}
            # No replicas rendered: a scaler owns the count, and keeps at least autoscaling.minReplicas groups.
            fewest = (values.get("autoscaling") or {}).get("minReplicas", 1)
            replicas, size = int(spec.get("replicas", fewest)), int(template.get("size", 1))
            groups += replicas
            worker = template.get("workerTemplate") or {}
            serving.append((name, template.get("leaderTemplate") or worker, replicas))
            if size > 1:
                serving.append((name, worker, replicas * (size - 1)))
        elif kind == "StatefulSet":
            template = spec.get("template") or {}
            role = (template.get("metadata", {}).get("labels") or {}).get(COMPONENT_LABEL)
            if role in SERVING_COMPONENTS:
                serving.append((name, template, int(spec.get("replicas", 1))))
                groups += int(spec.get("replicas", 1)) if role == LEADER else 0
    selector: dict[str, str] = {}
    tolerations: list[Mapping[str, Any]] = []
    wanted: dict[str, int] = {}
    networks: list[str] = []
    for _, template, _count in serving:
        pod = template.get("spec") or {}
        selector.update({str(k): str(v) for k, v in (pod.get("nodeSelector") or {}).items()})
        tolerations += [t for t in pod.get("tolerations") or [] if t not in tolerations]
        for resource, count in pod_requests(pod).items():
            wanted[resource] = max(wanted.get(resource, 0), count)
        annotation = (template.get("metadata", {}).get("annotations") or {}).get(MULTUS_ANNOTATION)
        networks += [n for n in multus_networks(annotation, namespace) if n not in networks]
    secrets: list[SecretRef] = []
    # A Secret the release renders itself (the provisioner's values) exists when its pods start: helm creates it
    # with or before them (hook weights), so only Secrets from elsewhere are the cluster's to hold.
    own = {str(o.get("metadata", {}).get("name")) for o in objects if o["kind"] == "Secret"}
    level, reasons = "restricted", list[str]()
    for name, template in _pod_templates(objects):
        for ref in secret_refs(template.get("spec") or {}, used_by=name):
            if ref.name not in own and all((s.name, s.key) != (ref.name, ref.key) for s in secrets):
                secrets.append(ref)
        needed, why = pod_security_level(template.get("spec") or {})
        if LEVELS.index(needed) > LEVELS.index(level):
            level, reasons = needed, []
        if needed == level:
            reasons += [f"{name}: {w}" for w in why]
    key = str(((values.get("placement") or {}).get("clusterNetworkLabel") or {}).get("key") or "")
    return ClusterNeeds(
        release=release, namespace=namespace, pods=sum(count for _, _, count in serving), groups=groups,
        node_selector=tuple(selector.items()), tolerations=tuple(tolerations),
        resources=tuple(sorted(wanted.items())), networks=tuple(networks), secrets=tuple(secrets),
        pod_security=level, pod_security_reasons=tuple(reasons), lws_api=lws_api,
        custom_kinds=tuple(sorted({(*_group_version(o), o["kind"]) for o in objects if o["kind"] in CRD_KINDS})),
        route_timeouts=any(r.get("timeouts") for o in objects if o["kind"] == "HTTPRoute"
                           for r in (o.get("spec") or {}).get("rules") or []),
        cluster_network_label=(key, selector[key]) if key and key in selector else None,
        resource_roles=tuple(sorted(resource_roles(values).items())), provisions_nodes=_provisions(objects))


def _group_version(obj: Mapping[str, Any]) -> tuple[str, str]:
    group, _, version = str(obj.get("apiVersion", "")).partition("/")
    return group, version


def resource_roles(values: Mapping[str, Any]) -> dict[str, str]:
    """What each extended resource the values name is for: gpu, rdma-vf (SR-IOV) or rdma-device (a device plugin
    that grants the RDMA devices)."""
    rdma = values.get("rdma") or {}
    roles = {str((values.get("preset") or {}).get("gpuResource")): "gpu"}
    if rdma.get("mode") == "sriov":
        roles[str((rdma.get("sriov") or {}).get("resourceName"))] = "rdma-vf"
    if rdma.get("devicePluginResource"):
        roles[str(rdma["devicePluginResource"])] = "rdma-device"
    return roles


def _provisions(objects: Iterable[dict[str, Any]]) -> bool:
    """Whether a pre-install hook Job of the release provisions (creates and labels) its nodes."""
    for obj in objects:
        hooks = str((obj.get("metadata", {}).get("annotations") or {}).get(HOOK_ANNOTATION, "")).split(",")
        template = (obj.get("spec") or {}).get("template") or {}
        role = (template.get("metadata", {}).get("labels") or {}).get(COMPONENT_LABEL)
        if obj["kind"] == "Job" and "pre-install" in hooks and role == PROVISIONER_COMPONENT:
            return True
    return False


def _pod_templates(objects: Iterable[dict[str, Any]]) -> Iterable[tuple[str, dict[str, Any]]]:
    """Every pod (template) the objects create, with a name for it: workloads, Jobs, and Pods."""
    for obj in objects:
        kind, spec = obj["kind"], obj.get("spec") or {}
        name = f"{kind}/{obj.get('metadata', {}).get('name', '')}"
        if kind == "Pod":
            yield name, obj
        elif kind == "LeaderWorkerSet":
            template = spec.get("leaderWorkerTemplate") or {}
            for key in ("leaderTemplate", "workerTemplate"):
                if template.get(key):
                    yield name, template[key]
        elif kind in ("StatefulSet", "Deployment", "DaemonSet", "ReplicaSet", "Job") and spec.get("template"):
            yield name, spec["template"]
        elif kind == "CronJob":
            job = (spec.get("jobTemplate") or {}).get("spec") or {}
            if job.get("template"):
                yield name, job["template"]


def pod_requests(pod: Mapping[str, Any]) -> dict[str, int]:
    """The extended resources (domain/name) a pod requests: the larger of its containers' sum and any init
    container's own request, as the scheduler counts them."""
    def requests(container: Mapping[str, Any]) -> dict[str, int]:
        res = container.get("resources") or {}
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        return {str(k): int(v) for k, v in merged.items() if "/" in str(k) and str(v).isdigit()}

    total: dict[str, int] = {}
    for container in pod.get("containers") or []:
        for key, count in requests(container).items():
            total[key] = total.get(key, 0) + count
    for container in pod.get("initContainers") or []:
        for key, count in requests(container).items():
            total[key] = max(total.get(key, 0), count)
    return total


def multus_networks(annotation: str | None, namespace: str) -> list[str]:
    """The NAMESPACE/NAME of each network in a `k8s.v1.cni.cncf.io/networks` annotation (a comma-separated list,
    NAME@IFACE allowed, or a JSON list of {name, namespace}); an unqualified name is in the pod's namespace."""
    if not annotation:
        return []
    text = annotation.strip()
    if text.startswith("["):
        entries = [(str(e.get("namespace") or namespace), str(e.get("name", ""))) for e in yaml.safe_load(text)
                   if isinstance(e, dict)]
    else:
        entries = []
        for item in (part.strip() for part in text.split(",") if part.strip()):
            item = item.split("@", 1)[0]
            ns, _, name = item.rpartition("/")
            entries.append((ns or namespace, name))
    return list(dict.fromkeys(f"{ns}/{name}" for ns, name in entries))


def secret_refs(pod: Mapping[str, Any], *, used_by: str) -> list[SecretRef]:
    """Every Secret a pod spec reads: env secretKeyRef, envFrom secretRef, secret volumes (and projected ones),
    imagePullSecrets."""
    refs = []
    for container in (pod.get("initContainers") or []) + (pod.get("containers") or []):
        where = f"{used_by}, container {container.get('name')}"
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                refs.append(SecretRef(str(ref.get("name")), str(ref.get("key")), f"{where}, env {env.get('name')}",
                                      bool(ref.get("optional"))))
        for source in container.get("envFrom") or []:
            ref = source.get("secretRef")
            if ref:
                refs.append(SecretRef(str(ref.get("name")), None, f"{where}, envFrom", bool(ref.get("optional"))))
    for volume in pod.get("volumes") or []:
        sources = [volume["secret"]] if volume.get("secret") else []
        sources += [s["secret"] for s in (volume.get("projected") or {}).get("sources") or [] if s.get("secret")]
        for source in sources:
            name = str(source.get("secretName") or source.get("name"))
            keys: list[str | None] = [str(item["key"]) for item in source.get("items") or []] or [None]
            refs += [SecretRef(name, key, f"{used_by}, volume {volume.get('name')}", bool(source.get("optional")))
                     for key in keys]
    refs += [SecretRef(str(s.get("name")), None, f"{used_by}, imagePullSecrets") for s in pod.get("imagePullSecrets")
             or []]
    return refs


def pod_security_level(pod: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The most restrictive Pod Security level that admits ``pod`` (a pod spec), and what keeps it from the next
    one: the Baseline controls (host namespaces, privileged, capabilities, hostPath volumes, host ports) and the
    main Restricted ones (volume types, privilege escalation, non-root, seccomp, dropped capabilities)."""
    containers = (pod.get("initContainers") or []) + (pod.get("containers") or [])
    baseline = [f"{field}: true" for field in ("hostNetwork", "hostPID", "hostIPC") if pod.get(field)]
    for c in containers:
        ctx = c.get("securityContext") or {}
        if ctx.get("privileged"):
            baseline.append(f"container {c.get('name')} is privileged")
        added = sorted(set((ctx.get("capabilities") or {}).get("add") or []) - BASELINE_CAPABILITIES)
        if added:
            baseline.append(f"container {c.get('name')} adds capability {', '.join(added)}")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            baseline.append(f"container {c.get('name')} uses a hostPort")
    baseline += [f"hostPath volume {v.get('name')}" for v in pod.get("volumes") or [] if "hostPath" in v]
    if baseline:
        return "privileged", baseline
    restricted = [f"volume {v.get('name')} is not of a restricted type" for v in pod.get("volumes") or []
                  if not set(v) - {"name"} <= RESTRICTED_VOLUMES]
    pod_ctx = pod.get("securityContext") or {}
    for c in containers:
        ctx = c.get("securityContext") or {}
        if ctx.get("allowPrivilegeEscalation") is not False:
            restricted.append(f"container {c.get('name')} does not set allowPrivilegeEscalation: false")
        if not ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")):
            restricted.append(f"container {c.get('name')} does not run as non-root")
        seccomp = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            restricted.append(f"container {c.get('name')} has no RuntimeDefault seccomp profile")
        if "ALL" not in ((ctx.get("capabilities") or {}).get("drop") or []):
            restricted.append(f"container {c.get('name')} does not drop ALL capabilities")
    return ("baseline", restricted) if restricted else ("restricted", [])
