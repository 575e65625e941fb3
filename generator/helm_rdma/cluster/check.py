"""Checks of a live cluster before a release is applied, the way a careful operator would: the namespace admits the
pods, the Secrets they read exist with their keys, the LeaderWorkerSet operator runs, enough Ready nodes fit the pods
and advertise what they request, the Multus networks exist, and no other release selects the same cluster network.

Each check is one ClusterCheck (ok, warning or error, with the fix). What the pods need comes from the release's
rendered objects (cluster.needs.ClusterNeeds); the cluster is read with the official `kubernetes` client. A read the
kube user may not do (401/403) becomes a warning naming what could not be checked; an API server that stops answering
is a ClusterError."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from helm_rdma.cluster.kube import Connection, _failure, _status, is_ready
from helm_rdma.cluster.needs import LEVELS, ClusterNeeds, SecretRef
from helm_rdma.contract import INSTANCE_LABEL
from helm_rdma.errors import ClusterError

PSS_DOC = "kubernetes.io/docs/concepts/security/pod-security-standards"
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
# Set by the kubelet from the cloud provider (kubernetes.io/docs/reference/labels-annotations-taints): not a label to
# set by hand.
SHAPE_LABEL = "node.kubernetes.io/instance-type"
# kubernetes-sigs/lws: config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml (plural), and the controller
# both installs create: config/default/kustomization.yaml (namespace lws-system, namePrefix lws-) over
# config/manager/manager.yaml (Deployment controller-manager, label control-plane=controller-manager, with
# commonLabels app.kubernetes.io/name=lws); charts/lws/templates/manager/deployment.yaml names it
# RELEASE-lws-controller-manager (lws-controller-manager when the release is lws, in lws-system as the README says);
# site/content/en/docs/installation/_index.md waits on deploy/lws-controller-manager -n lws-system either way.
LWS_PLURAL = "leaderworkersets"
LWS_CONTROLLER = ("lws-system", "lws-controller-manager")
LWS_CONTROLLER_LABELS = {"control-plane": "controller-manager", "app.kubernetes.io/name": "lws"}
LWS_INSTALL = ("install the LeaderWorkerSet operator (https://lws.sigs.k8s.io/docs/installation/: `helm install lws "
               "oci://registry.k8s.io/lws/charts/lws -n lws-system --create-namespace`), or set "
               "workload.kind=StatefulSet")
# What defines each kind of needs.CRD_KINDS (the plural of its CRD, as the published CRDs in tests/crds name it),
# and how to get it or do without it.
PROMETHEUS_OPERATOR = "install the Prometheus Operator's CRDs (kube-prometheus-stack installs them)"
CRDS = {
    "ServiceMonitor": ("servicemonitors", f"{PROMETHEUS_OPERATOR}, or set monitoring.serviceMonitor.enabled=false"),
    "PrometheusRule": ("prometheusrules", f"{PROMETHEUS_OPERATOR}, or set monitoring.rules.enabled=false"),
    "HTTPRoute": ("httproutes", "install the Gateway API CRDs (https://gateway-api.sigs.k8s.io/guides/#installing-"
                                "gateway-api) and a Gateway controller, or set gateway.enabled=false"),
    "InferencePool": ("inferencepools", "install the Gateway API Inference Extension's CRDs (a release's "
                                        "manifests.yaml from https://github.com/kubernetes-sigs/gateway-api-inference-"
                                        "extension/releases) and a Gateway that implements it, or set "
                                        "router.enabled=false"),
    "ScaledObject": ("scaledobjects", "install KEDA (https://keda.sh/docs/deploy/: `helm install keda kedacore/keda "
                                      "-n keda --create-namespace`), or set autoscaling.enabled=false"),
}
# The release and channel of the Gateway API a CRD belongs to (annotations of every published Gateway API CRD;
# tests/crds/gateway.networking.k8s.io_httproutes.yaml). HTTPRoute's rules[].timeouts is Standard from v1.2.0.
GATEWAY_BUNDLE, GATEWAY_CHANNEL = "gateway.networking.k8s.io/bundle-version", "gateway.networking.k8s.io/channel"
# Multus's NetworkAttachmentDefinition (k8snetworkplumbingwg/multus-cni deployments/multus-daemonset.yml).
NAD_API = ("k8s.cni.cncf.io", "v1", "network-attachment-definitions")
ROLE_FIX = {
    "gpu": "the GPU operator's device plugin (NVIDIA's, or AMD's on MI300X) must run on these nodes and advertise it "
           "(kubectl describe node NODE, under Allocatable)",
    "rdma-vf": "the NVIDIA Network Operator's SR-IOV device plugin must advertise it on these nodes "
               "(rdma.sriov.resourceName names what the pods request)",
    "rdma-device": "the device plugin that grants the RDMA devices (such as the NVIDIA Network Operator's RDMA shared "
                   "device plugin) must advertise it on these nodes, or unset rdma.devicePluginResource to run "
                   "privileged",
}
SHOWN = 5  # node and object names shown in one message


@dataclass(frozen=True)
class ClusterCheck:
    """One check of the cluster: its id, ok / warning / error, what it is about, what was found and the fix."""

    check: str
    status: str
    subject: str
    message: str
    fix: str = ""

    def line(self) -> str:
        about = f" {self.subject}" if self.subject else ""
        return f"{self.status:<7} {self.check}{about}: {self.message}" + (f"; fix: {self.fix}" if self.fix else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClusterReport:
    """Every check of one cluster for one release, in the order an operator would go."""

    context: str
    server: str
    namespace: str
    release: str
    checks: tuple[ClusterCheck, ...]

    @property
    def errors(self) -> int:
        return sum(1 for c in self.checks if c.status == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for c in self.checks if c.status == "warning")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "checks": [c.to_dict() for c in self.checks]}


class _Denied(Exception):
    """A read the kube user may not do (HTTP 401/403)."""


class _Reader:
    """The API calls the checks make, as plain dicts: None for a 404, _Denied for 401/403, ClusterError else.

    Answers are parsed as JSON rather than into the client's models, whose client-side validation refuses some valid
    objects (a CRD whose status has null conditions: kubernetes-client/python#1172)."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        self.core, self.apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
        self.ext, self.custom = client.ApiextensionsV1Api(api_client), client.CustomObjectsApi(api_client)

    def get(self, what: str, call: Callable[..., Any], *args: Any) -> Any:
        try:
            response = call(*args, _preload_content=False)
            return json.loads(response.data)
        except ValueError as exc:
            raise ClusterError(action=what, reason=f"the answer is not JSON ({exc})") from None
        except Exception as exc:  # the API server's status, or urllib3 connection errors and the like
            if _status(exc) == 404:
                return None
            if _status(exc) in (401, 403):
                raise _Denied(f"HTTP {_status(exc)}: the kube user may not {what}") from None
            raise _failure(what, exc) from None

    def items(self, what: str, call: Callable[..., Any], *args: Any) -> list[dict[str, Any]]:
        found = self.get(what, call, *args)
        return list((found or {}).get("items") or [])


def check_cluster(needs: ClusterNeeds, *, connection: Connection, create_namespace: bool = False,
                  install_creates: frozenset[str] = frozenset()) -> ClusterReport:
    """Check the cluster ``connection`` reaches for a release that needs ``needs``.

    ``create_namespace`` (helm's --create-namespace) makes a missing namespace a warning instead of an error;
    ``install_creates`` names Secrets install and upgrade create when missing (the API key helm-rdma named).

    Raises:
        ClusterError: The API server stopped answering.
    """
    reader = _Reader(connection.api_client)
    checks: list[ClusterCheck] = []
    steps: list[tuple[str, str, Callable[[], ClusterCheck | list[ClusterCheck]]]] = [
        ("namespace", needs.namespace, partial(_namespace, reader, needs, create_namespace)),
        *[("secret", _secret_subject(ref), partial(_secret, reader, needs.namespace, ref, ref.name in install_creates))
          for ref in needs.secrets],
    ]
    if needs.lws_api:
        steps += [("lws-crd", "", partial(_lws_crd, reader, needs)), ("lws-controller", "", partial(_lws_controller,
                                                                                                     reader))]
    steps += [("crd", f"{CRDS[kind][0]}.{group}", partial(_crd, reader, needs, group, version, kind))
              for group, version, kind in needs.custom_kinds]
    steps.append(("nodes", "", partial(_nodes, reader, needs)))
    steps += [("network-attachment", n, partial(_network, reader, n)) for n in needs.networks]
    if needs.cluster_network_label:
        steps.append(("cluster-network-label", "=".join(needs.cluster_network_label),
                      partial(_cluster_network_label, reader, needs)))
    for check, subject, run in steps:
        try:
            found = run()
            checks += found if isinstance(found, list) else [found]
        except _Denied as denied:
            checks.append(ClusterCheck(check, "warning", subject, f"not checked: {denied}",
                                       "ask for read access, or check it by hand with kubectl"))
    return ClusterReport(context=connection.context, server=connection.server, namespace=needs.namespace,
                         release=needs.release, checks=tuple(checks))


def _namespace(reader: _Reader, needs: ClusterNeeds, create_namespace: bool) -> list[ClusterCheck]:
    """The namespace exists, and its Pod Security level admits the pods."""
    ns = needs.namespace
    label = f"kubectl label namespace {ns} {ENFORCE_LABEL}={needs.pod_security}"
    found = reader.get(f"read namespace {ns}", reader.core.read_namespace, ns)
    why = _pss_reasons(needs)
    if found is None:
        if create_namespace:
            return [ClusterCheck("namespace", "warning", ns, "does not exist; helm creates it (--create-namespace) "
                                 f"with no {ENFORCE_LABEL} label, so the cluster's default level applies and the pods "
                                 f"need {needs.pod_security} ({why})", f"create it first: kubectl create namespace "
                                 f"{ns} && {label}")]
        return [ClusterCheck("namespace", "error", ns, "does not exist, so helm install fails",
                             f"kubectl create namespace {ns} && {label}")]
    checks = [ClusterCheck("namespace", "ok", ns, "exists")]
    level = str((found.get("metadata", {}).get("labels") or {}).get(ENFORCE_LABEL, ""))
    if not level and needs.pod_security == "restricted":
        checks.append(ClusterCheck("pod-security", "ok", ns, "has no enforce label, and the pods meet the restricted "
                                   "level anyway"))
    elif not level:
        checks.append(ClusterCheck(
            "pod-security", "warning", ns, f"has no {ENFORCE_LABEL} label, so the cluster's default level applies "
            "(set in the API server's admission configuration, which cannot be read from here; Kubernetes' own "
            f"default, privileged, admits the pods); the pods need {needs.pod_security} ({why})", label))
    elif level not in LEVELS or LEVELS.index(level) < LEVELS.index(needs.pod_security):
        checks.append(ClusterCheck(
            "pod-security", "error", ns, f"enforces Pod Security level {level}, which refuses the pods: they need "
            f"{needs.pod_security} ({why}; {PSS_DOC})", f"{label} --overwrite"))
    else:
        checks.append(ClusterCheck("pod-security", "ok", ns, f"enforces {level}, which admits the pods (they need "
                                   f"{needs.pod_security})"))
    return checks


def _pss_reasons(needs: ClusterNeeds) -> str:
    shown = list(needs.pod_security_reasons[:3])
    more = len(needs.pod_security_reasons) - len(shown)
    return "; ".join(shown) + (f"; and {more} more" if more > 0 else "") if shown else "their security context"


def _secret_subject(ref: SecretRef) -> str:
    return f"{ref.name}/{ref.key}" if ref.key else ref.name


def _secret(reader: _Reader, namespace: str, ref: SecretRef, install_creates: bool = False) -> ClusterCheck:
    """The Secret exists and holds the key (its values are never read out, only their names and lengths), or
    install creates it."""
    subject = _secret_subject(ref)
    found = reader.get(f"read secret {ref.name} in namespace {namespace}", reader.core.read_namespaced_secret,
                       ref.name, namespace)
    data = (found or {}).get("data") or {}
    create = (f"kubectl -n {namespace} create secret generic {ref.name} --from-literal={ref.key or 'KEY'}=VALUE")
    bad = "warning" if ref.optional else "error"
    if found is None and install_creates:
        return ClusterCheck("secret", "ok", subject, f"does not exist yet: helm rdma install and upgrade create it "
                            f"with a random key (read by {ref.used_by})")
    if found is None:
        return ClusterCheck("secret", bad, subject, f"Secret {ref.name} does not exist in namespace {namespace} "
                            f"(read by {ref.used_by}), so the pods cannot start", create)
    if ref.key is None:
        return ClusterCheck("secret", "ok", subject, f"exists (read by {ref.used_by})")
    if ref.key not in data:
        keys = ", ".join(sorted(data)) or "none"
        return ClusterCheck("secret", bad, subject, f"Secret {ref.name} has no key {ref.key} (its keys: {keys}; read "
                            f"by {ref.used_by})", f"add the key ({create} --dry-run=client -o yaml | kubectl apply "
                            "-f -), or point the values at a key it has")
    if not data[ref.key]:
        return ClusterCheck("secret", "warning", subject, f"key {ref.key} of Secret {ref.name} is empty (read by "
                            f"{ref.used_by})", f"give it a value ({create} --dry-run=client -o yaml | kubectl apply "
                            "-f -)")
    return ClusterCheck("secret", "ok", subject, f"exists with key {ref.key} (read by {ref.used_by})")


def _lws_crd(reader: _Reader, needs: ClusterNeeds) -> ClusterCheck:
    assert needs.lws_api is not None
    group, version = needs.lws_api
    name = f"{LWS_PLURAL}.{group}"
    return _served(_read_crd(reader, name), "lws-crd", name, version, "LeaderWorkerSet", install=LWS_INSTALL,
                   upgrade="upgrade the LeaderWorkerSet operator (https://lws.sigs.k8s.io/docs/installation/)")


def _crd(reader: _Reader, needs: ClusterNeeds, group: str, version: str, kind: str) -> ClusterCheck:
    plural, fix = CRDS[kind]
    name = f"{plural}.{group}"
    found = _read_crd(reader, name)
    check = _served(found, "crd", name, version, kind, install=fix, upgrade=f"upgrade them; {fix}")
    if check.status != "ok" or kind != "HTTPRoute" or not needs.route_timeouts:
        return check
    notes = ((found or {}).get("metadata") or {}).get("annotations") or {}
    bundle = str(notes.get(GATEWAY_BUNDLE, ""))
    parts = re.match(r"v?(\d+)\.(\d+)", bundle)
    if notes.get(GATEWAY_CHANNEL, "standard") == "standard" and parts and tuple(map(int, parts.groups())) < (1, 2):
        return ClusterCheck("crd", "warning", name, f"is Gateway API {bundle} (Standard channel), which has no "
                            "rules[].timeouts before v1.2: the API server drops gateway.timeout, and streamed "
                            "completions get the Gateway's default timeout", "upgrade the Gateway API CRDs to v1.2 "
                            "or later (https://gateway-api.sigs.k8s.io/guides/#installing-gateway-api)")
    return check


def _read_crd(reader: _Reader, name: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = reader.get(f"read customresourcedefinition {name}",
                                              reader.ext.read_custom_resource_definition, name)
    return found


def _served(found: dict[str, Any] | None, check: str, name: str, version: str, kind: str, *, install: str,
            upgrade: str) -> ClusterCheck:
    """Whether the CRD ``name`` (``found``, None when absent) is installed and serves ``version`` of ``kind``."""
    if found is None:
        return ClusterCheck(check, "error", name, f"is not installed, so the cluster does not know the {kind} the "
                            "release creates (helm install fails)", install)
    served = [v.get("name") for v in (found.get("spec") or {}).get("versions") or [] if v.get("served")]
    if version not in served:
        return ClusterCheck(check, "error", name, f"serves {', '.join(map(str, served)) or 'no version'}, not "
                            f"{version}, which the release uses", upgrade)
    return ClusterCheck(check, "ok", name, f"installed, serving {version}")


def _lws_controller(reader: _Reader) -> ClusterCheck:
    """A Deployment of the LWS controller with a ready replica: without one, nothing creates the pods."""
    namespace, name = LWS_CONTROLLER
    found = reader.get(f"read deployment {name} in namespace {namespace}", reader.apps.read_namespaced_deployment,
                       name, namespace)
    if found is None:
        candidates = [d for d in reader.items("list deployments in all namespaces",
                                              reader.apps.list_deployment_for_all_namespaces)
                      if LWS_CONTROLLER_LABELS.items() <= (d.get("metadata", {}).get("labels") or {}).items()]
        found = candidates[0] if candidates else None
    if found is None:
        labels = ",".join(f"{k}={v}" for k, v in LWS_CONTROLLER_LABELS.items())
        return ClusterCheck("lws-controller", "error", f"{namespace}/{name}", "no LeaderWorkerSet controller "
                            f"(no Deployment {name} in {namespace}, none labelled {labels}), so nothing would create "
                            "the pods of a LeaderWorkerSet", LWS_INSTALL)
    meta, status = found.get("metadata", {}), found.get("status") or {}
    where = f"{meta.get('namespace')}/{meta.get('name')}"
    ready, wanted = int(status.get("readyReplicas") or 0), int((found.get("spec") or {}).get("replicas") or 1)
    if ready < 1:
        return ClusterCheck("lws-controller", "error", where, f"has no ready replica (0 of {wanted}), so nothing "
                            "would create the pods of a LeaderWorkerSet", f"kubectl -n {meta.get('namespace')} "
                            f"describe deployment {meta.get('name')}; kubectl -n {meta.get('namespace')} logs "
                            f"deployment/{meta.get('name')}")
    return ClusterCheck("lws-controller", "ok", where, f"{ready} of {wanted} replica(s) ready")


def _listed(reasons: list[str]) -> str:
    shown = SHOWN + 2
    return "; ".join(reasons[:shown]) + (f"; and {len(reasons) - shown} more" if len(reasons) > shown else "")


def _names(nodes: Iterable[Mapping[str, Any]]) -> str:
    names = [str(n.get("metadata", {}).get("name")) for n in nodes]
    return ", ".join(names[:SHOWN]) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _tolerated(taint: Mapping[str, Any], tolerations: Iterable[Mapping[str, Any]]) -> bool:
    """Whether a toleration matches a taint (kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration)."""
    for t in tolerations:
        key_ok = t.get("key") == taint.get("key") or (not t.get("key") and t.get("operator") == "Exists")
        value_ok = t.get("operator") == "Exists" or str(t.get("value") or "") == str(taint.get("value") or "")
        effect_ok = not t.get("effect") or t.get("effect") == taint.get("effect")
        if key_ok and value_ok and effect_ok:
            return True
    return False


def _untolerated(node: Mapping[str, Any], tolerations: Iterable[Mapping[str, Any]]) -> list[str]:
    taints = (node.get("spec") or {}).get("taints") or []
    return [f"{t.get('key')}{'=' + str(t['value']) if t.get('value') else ''}:{t.get('effect')}" for t in taints
            if t.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(t, list(tolerations))]


def _nodes(reader: _Reader, needs: ClusterNeeds) -> list[ClusterCheck]:
    """Enough Ready, schedulable nodes that carry the pods' labels, whose taints the pods tolerate, and that
    advertise the extended resources the pods request."""
    nodes = reader.items("list nodes", reader.core.list_node)
    wanted = needs.pods
    selector = ", ".join(f"{k}={v}" for k, v in needs.node_selector)
    matching, lost, fix = nodes, [], ""
    for key, value in needs.node_selector:
        kept = [n for n in matching if (n.get("metadata", {}).get("labels") or {}).get(key) == value]
        if len(kept) < len(matching) and len(kept) < wanted:
            lost.append(f"{len(kept)} of {len(matching)} carry {key}={value}")
            fix = fix or _label_fix(key, value, [n for n in matching if n not in kept], needs)
        matching = kept
    if needs.provisions_nodes and not matching:
        return [ClusterCheck("nodes", "ok", selector, f"none yet: the release's pre-install hook provisions {wanted} "
                             "node(s) and waits until they are Ready")]
    usable = []
    for node in matching:
        name = node.get("metadata", {}).get("name")
        if not is_ready(node):
            lost.append(f"{name} is not Ready")
            fix = fix or f"kubectl describe node {name} (its conditions and kubelet)"
        elif (node.get("spec") or {}).get("unschedulable"):
            lost.append(f"{name} is cordoned")
            fix = fix or f"kubectl uncordon {name}"
        elif taints := _untolerated(node, needs.tolerations):
            lost.append(f"{name} has taint {', '.join(taints)}, which the pods do not tolerate")
            fix = fix or "remove the taint, or tolerate it under placement.tolerations"
        else:
            usable.append(node)
    need = f"{wanted} needed ({needs.groups} group(s), one pod per node)"
    if len(usable) >= wanted:
        checks = [ClusterCheck("nodes", "ok", selector, f"{len(usable)} Ready node(s) fit the pods' node selector and "
                               f"tolerations ({_names(usable)}); {need}")]
    else:
        checks = [ClusterCheck("nodes", "error", selector, f"{len(usable)} usable node(s) for the pods, {need}: "
                               + _listed(lost or ["not enough nodes"]), fix or "add nodes")]
    return checks + _resources(needs, usable or matching)


def _label_fix(key: str, value: str, missing: list[Mapping[str, Any]], needs: ClusterNeeds) -> str:
    if key == SHAPE_LABEL:
        return ("add nodes of that shape (helm rdma provision, or install --provision), or use the preset of the "
                f"nodes you have (kubectl get nodes -L {SHAPE_LABEL})")
    if needs.cluster_network_label and key == needs.cluster_network_label[0]:
        return (f"label the {needs.pods} nodes of one RDMA cluster network (only those have RDMA paths between "
                f"them; of this shape: {_names(missing)}): kubectl label node NODE... {key}={value}")
    return f"kubectl label node NODE {key}={value}, or change placement.nodeSelector"


def _resources(needs: ClusterNeeds, nodes: list[dict[str, Any]]) -> list[ClusterCheck]:
    """Each extended resource the pods request, among the nodes that fit them otherwise."""
    if not nodes:
        return []
    roles = dict(needs.resource_roles)
    checks = []
    for resource, count in needs.resources:
        role = roles.get(resource, "")
        check = {"gpu": "gpu-resource", "rdma-vf": "rdma-resource", "rdma-device": "rdma-resource"}.get(role,
                                                                                                          "resource")
        short = [n for n in nodes if _allocatable(n, resource) < count]
        have = len(nodes) - len(short)
        if have >= needs.pods:
            checks.append(ClusterCheck(check, "ok", resource, f"{have} of those node(s) advertise {count} or more"))
            continue
        detail = ", ".join(f"{n.get('metadata', {}).get('name')} has {_allocatable(n, resource)}"
                           for n in short[:SHOWN])
        checks.append(ClusterCheck(check, "error", resource, f"each pod requests {count}, and only {have} of "
                                   f"{len(nodes)} node(s) advertise that many ({detail}); {needs.pods} needed",
                                   ROLE_FIX.get(role, "a device plugin must advertise it on these nodes")))
    return checks


def _allocatable(node: Mapping[str, Any], resource: str) -> int:
    value = str(((node.get("status") or {}).get("allocatable") or {}).get(resource, "0"))
    return int(value) if value.isdigit() else 0


def _network(reader: _Reader, network: str) -> ClusterCheck:
    """A NetworkAttachmentDefinition the pods' Multus annotation names."""
    namespace, _, name = network.partition("/")
    group, version, plural = NAD_API
    found = reader.get(f"read network-attachment-definition {network}", reader.custom.get_namespaced_custom_object,
                       group, version, namespace, plural, name)
    if found is not None:
        return ClusterCheck("network-attachment", "ok", network, "NetworkAttachmentDefinition exists")
    crd = _read_crd(reader, f"{plural}.{group}")
    if crd is None:
        return ClusterCheck("network-attachment", "error", network, "Multus is not installed (no "
                            f"{plural}.{group} CRD), so the pods get no RDMA VFs", "install the NVIDIA Network "
                            "Operator with Multus and the SR-IOV device plugin, or use rdma.mode=hostNetwork")
    return ClusterCheck("network-attachment", "error", network, f"NetworkAttachmentDefinition {name} does not exist "
                        f"in namespace {namespace}, so Multus refuses the pods", "create it as Oracle's OKE RDMA guide "
                        "does (oracle-quickstart/oci-hpc-oke, docs/using-rdma-network-interfaces-in-manifests.md), or "
                        "set rdma.sriov.networkName to one that exists (kubectl get network-attachment-definitions "
                        "-A)")


def _cluster_network_label(reader: _Reader, needs: ClusterNeeds) -> ClusterCheck:
    """No pod, StatefulSet or LeaderWorkerSet of another release selects the same cluster-network label value."""
    assert needs.cluster_network_label is not None
    key, value = needs.cluster_network_label
    others: dict[tuple[str, str], list[str]] = {}

    def look(kind: str, objects: Iterable[Mapping[str, Any]], pod_specs: Callable[[Any], list[Any]]) -> None:
        for obj in objects:
            meta = obj.get("metadata", {})
            release = str((meta.get("labels") or {}).get(INSTANCE_LABEL) or meta.get("name"))
            namespace = str(meta.get("namespace"))
            if (namespace, release) == (needs.namespace, needs.release):
                continue
            if any(((spec or {}).get("nodeSelector") or {}).get(key) == value for spec in pod_specs(obj)):
                others.setdefault((namespace, release), []).append(f"{kind} {meta.get('name')}")

    look("pod", reader.items("list pods in all namespaces", reader.core.list_pod_for_all_namespaces),
         lambda o: [o.get("spec")])
    look("StatefulSet", reader.items("list statefulsets in all namespaces",
                                     reader.apps.list_stateful_set_for_all_namespaces),
         lambda o: [((o.get("spec") or {}).get("template") or {}).get("spec")])
    if needs.lws_api:
        group, version = needs.lws_api
        lws = reader.items("list leaderworkersets in all namespaces", reader.custom.list_cluster_custom_object,
                           group, version, LWS_PLURAL)
        look("LeaderWorkerSet", lws, lambda o: [(t or {}).get("spec") for t in (
            ((o.get("spec") or {}).get("leaderWorkerTemplate") or {}).get(k) for k in ("leaderTemplate",
                                                                                       "workerTemplate"))])
    if not others:
        return ClusterCheck("cluster-network-label", "ok", f"{key}={value}", "no other release selects these nodes")
    described = "; ".join(f"release {release} in namespace {ns} ({', '.join(objs[:3])})"
                          for (ns, release), objs in sorted(others.items()))
    return ClusterCheck("cluster-network-label", "error", f"{key}={value}", f"already selected by {described}: two "
                        "releases on one cluster network's nodes compete for their GPUs",
                        "give this release its own cluster network (clusterNetwork.name, or "
                        "placement.clusterNetworkLabel.value), or uninstall the other release")
