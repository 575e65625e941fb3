"""doctor's own checks of resolved values before anything is applied: settings NCCL does not read (lookalikes.py,
which the chart refuses too), device lists, ports the node's own services hold, images CRI-O may refuse, nodes that
never join, the model's token and where its weights land. The chart's cross-field rules are the chart's own
(templates/_rules.tpl): doctor learns them by rendering the chart (commands/doctor.py) and reads helm's refusal with
``chart_findings``. Each finding names the key and the fix."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from helm_rdma.checks import lookalikes
from helm_rdma.checks.facts import group_watch, oci_hooks
from helm_rdma.checks.finding import Finding
from helm_rdma.checks.serving import serving_findings
from helm_rdma.resolve.values import Resolved

# Ports that services of an OKE node listen on: a hostNetwork pod cannot bind them.
NODE_PORTS = {22: "sshd", 2379: "etcd", 2380: "etcd", 6443: "the API server", 10248: "the kubelet health check",
              10249: "kube-proxy metrics", 10250: "the kubelet", 10255: "the kubelet read-only port",
              10256: "kube-proxy health"}
_FIX = "; fix: "


def value_findings(resolved: Resolved) -> list[Finding]:
    """doctor's own findings about ``resolved``'s values, errors first (the chart's rules not among them)."""
    v = resolved.values
    found = lookalikes.findings(v) + _hca_list(v, resolved) + _ports(v) + _token(v) + _image_hosts(v)
    found += _nodes_join(v) + _debug(v) + _exposure(v) + _group_ports(v) + _sriov_network(v) + _placement(v)
    found += _storage(v, resolved) + _statefulset_roll(v)
    found += _experimental(v, resolved)
    found += serving_findings(v)
    return in_order(found)


def in_order(findings: Sequence[Finding]) -> list[Finding]:
    """Errors first, then by key (a stable sort: findings of one key keep their order)."""
    return sorted(findings, key=lambda f: (f.severity != "error", f.key))


def chart_findings(problems: Sequence[str]) -> list[Finding]:
    """The lines of the chart's validateValues (``KEY: MESSAGE; fix: FIX``, see ChartValuesError) as errors."""
    found = []
    for line in problems:
        key, _, rest = line.partition(": ")
        message, _, fix = rest.partition(_FIX)
        found.append(Finding("error", key, message, fix))
    return found


def with_chart(own: Sequence[Finding], chart: Sequence[Finding]) -> list[Finding]:
    """doctor's own findings and the chart's, each once (the chart refuses the NCCL look-alikes too), errors first;
    the chart's come first among those of one key."""
    return in_order([*chart, *(f for f in own if f not in chart)])


def _hca_list(v: dict[str, Any], resolved: Resolved) -> list[Finding]:
    if v["rdma"]["mode"] != "hostNetwork":
        return []
    key = "nccl.settings.NCCL_IB_HCA"
    raw = str(v["nccl"]["settings"].get("NCCL_IB_HCA", ""))
    preset = resolved.preset
    if not raw:
        return [Finding("error", key, "is not set, so NCCL may use any NIC, the front-end ones included",
                        f"set it to the preset's list, ={','.join(preset.hcas)}")]
    exact, exclude = raw.startswith("="), raw.startswith("^")
    names = [part.split(":")[0] for part in raw.lstrip("=^").split(",") if part]
    found = []
    if exclude:
        return [Finding("warning", key, "excludes devices (^), so NCCL may use every other NIC, new ones included",
                        f"list the RDMA NICs exactly: ={','.join(preset.hcas)}")]
    front = sorted(set(names) & set(preset.front_end_nics), key=_device_order)
    if not exact:
        prefixed = sorted({d for d in preset.hcas + preset.front_end_nics for n in names
                           if d != n and d.startswith(n)}, key=_device_order)
        if prefixed:
            front += [d for d in prefixed if d in preset.front_end_nics and d not in front]
            found.append(Finding("warning", key, f"has no leading '=', so NCCL treats each name as a prefix "
                                 f"({', '.join(prefixed)} match too)", "start the list with '='"))
    if front:
        found.append(Finding("error", key, f"selects front-end NIC(s) {', '.join(front)} of {preset.shape}",
                             f"use the preset's list, ={','.join(preset.hcas)}"))
    missing = sorted(set(preset.hcas) - set(names), key=_device_order)
    extra = sorted(set(names) - set(preset.hcas) - set(front), key=_device_order)
    if missing or extra:
        detail = "; ".join(p for p in (f"missing {', '.join(missing)}" if missing else "",
                                       f"extra {', '.join(extra)}" if extra else "") if p)
        found.append(Finding("warning", key, f"differs from the {preset.name} preset's RDMA NICs ({detail})",
                             "check the names with `rdma link` on a node (they can change with the node image), "
                             "or drop the override"))
    return found


def _device_order(name: str) -> int:
    return int(name.split("_")[1]) if "_" in name and name.split("_")[1].isdigit() else 0


def _ports(v: dict[str, Any]) -> list[Finding]:
    """Ports the node's own services hold (the chart's rule host-ports finds ports that repeat one another)."""
    if v["rdma"]["mode"] != "hostNetwork":
        return []
    ports = {"vllm.port": v["vllm"]["port"], "distributed.masterPort": v["distributed"]["masterPort"]}
    if group_watch(v):
        ports["distributed.groupWatchPort"] = v["distributed"]["groupWatchPort"]
    if v["distributed"]["backend"] == "ray":
        ray = v["distributed"]["ray"]
        ports.update({"distributed.ray.port": ray["port"], "distributed.ray.dashboardPort": ray["dashboardPort"],
                      "distributed.ray.clientPort": ray["clientPort"]})
    return [Finding("error", key, f"port {port} is taken on the node by {NODE_PORTS[port]} (hostNetwork)",
                    "choose another port") for key, port in ports.items() if port in NODE_PORTS]


def _token(v: dict[str, Any]) -> list[Finding]:
    model = v["model"]
    if not model["gated"] or model["hfTokenSecret"]["name"] or model["name"].startswith("/"):
        return []
    always = model["storage"]["type"] == "emptyDir"  # an emptyDir starts empty at every group start
    return [Finding("error" if always else "warning", "model.hfTokenSecret.name",
                    f"{model['name']} is gated and no Hugging Face token Secret is named"
                    + ("" if always else ", so the download fails unless the weights are already in the model "
                                         "directory"),
                    "kubectl create secret generic hf-token --from-literal=token=hf_..., then set "
                    "model.hfTokenSecret.name=hf-token")]


# A repository whose first component names a registry host (docker's rule: it holds '.' or ':' or is localhost).
# CRI-O 1.34 enforces short-name resolution, and an image without a host may be refused as ambiguous
# (containers/image docs/containers-registries.conf.5.md, short-name-mode; Oracle's node script turns it off for
# Kubernetes >= v1.34, oracle-quickstart/oci-hpc-oke files/oke-ubuntu-cloud-init.sh configure_crio_defaults).
_IMAGE_HOST = re.compile(r"^(localhost|[^/]*[.:][^/]*)/")
_SHORT_NAME = "a short name without a registry host, which CRI-O 1.34 and later may refuse to pull (short-name mode)"


def _image_hosts(v: dict[str, Any]) -> list[Finding]:
    """Images named without their registry host: doubts, since nodes may be set up to resolve short names."""
    found = []
    vllm = str(v["image"]["repository"])
    if not _IMAGE_HOST.match(vllm):
        found.append(Finding("warning", "image.repository", f"is {vllm}, {_SHORT_NAME} on nodes not set up to allow it",
                             f"write the registry host, e.g. docker.io/{vllm}"))
    tests = str(v["verify"]["tests"]["image"]["repository"])
    if v["verify"]["tests"]["enabled"] and not _IMAGE_HOST.match(tests):
        found.append(Finding("warning", "verify.tests.image.repository", f"is {tests}, {_SHORT_NAME}",
                             f"write the registry host, e.g. docker.io/library/{tests} for a Docker Official Image"))
    provisioner = v["clusterNetwork"]["image"]["repository"]
    if oci_hooks(v) and provisioner and not _IMAGE_HOST.match(str(provisioner)):
        found.append(Finding("warning", "clusterNetwork.image.repository", f"is {provisioner}, {_SHORT_NAME}",
                             "write the registry host, e.g. "
                             "REGION-KEY.ocir.io/TENANCY-NAMESPACE/helm-rdma-provisioner"))
    return found


def _nodes_join(v: dict[str, Any]) -> list[Finding]:
    """Provisioned nodes join the cluster by a generated cloud-init (clusterNetwork.oke.clusterId) or the user's."""
    network = v["clusterNetwork"]
    oke = network["oke"]
    if (not network["provision"] or oke["clusterId"] or oke["cloudInit"]
            or (oke["apiServerHost"] and oke["clusterCaCert"])):
        return []
    return [Finding("warning", "clusterNetwork.oke.clusterId", "is empty and no cloudInit is given, so the GPU nodes "
                    "(billed by the hour) never join the cluster and the hook waits for them in vain",
                    "set clusterNetwork.oke.clusterId to the OKE cluster's OCID: the nodes' cloud-init is then "
                    "generated")]


def quantity(text: str) -> float | None:
    """The number a Kubernetes quantity such as 1Ti, 900G, 512Mi or 500m stands for (bytes, cores); None when it is
    not one. The chart's vllm-rdma.quantity reads it the same way."""
    m = re.fullmatch(r"([0-9.]+)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P|m)?", str(text))
    if not m:
        return None
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "k": 1e3, "M": 1e6, "G": 1e9,
             "T": 1e12, "P": 1e15, "m": 1e-3, None: 1}
    return float(m.group(1)) * units[m.group(2)]


# Oracle's node set-up builds the local NVMe drives into a RAID mounted here (oracle-quickstart/oci-hpc-oke
# files/oke-nvme-raid.sh; nodeinit/nvme-raid.sh for the nodes helm-rdma provisions); anything else on the node is
# the boot volume.
NVME_MOUNT = "/mnt/nvme"


def _storage(v: dict[str, Any], resolved: Resolved) -> list[Finding]:
    """Where the weights land, against their size: the boot volume cannot hold a 405B model."""
    storage, weights = v["model"]["storage"], resolved.model.weight_bytes
    gb = weights / 1e9
    if storage["type"] == "hostPath":
        path, boot = storage["hostPath"].rstrip("/"), int(v["clusterNetwork"]["bootVolumeSizeGBs"])
        on_nvme = path == NVME_MOUNT or path.startswith(NVME_MOUNT + "/")
        if not on_nvme and weights > boot * 1e9:
            return [Finding("warning", "model.storage.hostPath", f"{path} is not under {NVME_MOUNT}, so the "
                            f"{gb:.0f} GB of {resolved.model.alias}'s weights go to the boot volume, which holds "
                            f"{boot} GB (clusterNetwork.bootVolumeSizeGBs)",
                            f"keep the weights on the local NVMe RAID: model.storage.hostPath={NVME_MOUNT}/models")]
    if storage["type"] == "emptyDir":
        found = [Finding("warning", "model.storage.type", "emptyDir is wiped at every group restart, so every "
                         f"restart downloads {gb:.0f} GB again on every node",
                         f"use model.storage.type=hostPath (on {NVME_MOUNT}) or a shared pvc")]
        limit = quantity(storage["sizeLimit"])
        if limit is not None and limit < weights:
            found.insert(0, Finding("error", "model.storage.sizeLimit", f"{storage['sizeLimit']} is less than the "
                                    f"{gb:.0f} GB of weights: the kubelet evicts the pod mid-download",
                                    f"raise it above {gb:.0f}G, or use hostPath"))
        return found
    return []


def _debug(v: dict[str, Any]) -> list[Finding]:
    if v["nccl"]["debug"] in ("INFO", "TRACE"):
        return []
    return [Finding("warning", "nccl.debug", "NCCL will not log which transport it uses, so a fallback from RDMA "
                    "to TCP sockets goes unseen in the pods' logs", "set nccl.debug=INFO")]


def _exposure(v: dict[str, Any]) -> list[Finding]:
    """Under hostNetwork every port listens on the node's VCN address; NetworkPolicies do not reliably apply there."""
    # Without the opt-out, the chart's rule api-without-key refuses this (an error, in plain helm's words too).
    if v["rdma"]["mode"] != "hostNetwork" or v["api"]["keySecret"]["name"] or not v["api"]["allowUnauthenticated"]:
        return []
    return [Finding("warning", "api.allowUnauthenticated", f"is true, so the OpenAI API listens on the node's VCN "
                    f"address (port {v['vllm']['port']}) and answers anyone who reaches it",
                    "keep that port closed with OCI security rules, or drop api.allowUnauthenticated and let helm "
                    "rdma install create a key Secret (or name one in api.keySecret.name)")]


def _group_ports(v: dict[str, Any]) -> list[Finding]:
    """Under hostNetwork the group's own ports listen on the node's VCN address with no authentication, and
    NetworkPolicies do not apply to hostNetwork pods. OCI admits the union of the subnet's security lists and the
    VNIC's NSGs, so without an NSG on the nodes this release provisions, the group reaches its own ports only where
    the subnet's security lists admit them to everyone in their source range."""
    network = v["clusterNetwork"]
    if v["rdma"]["mode"] != "hostNetwork" or not network["provision"] or network["nsgIds"]:
        return []
    d = v["distributed"]
    watch = f", the group watch's {d['groupWatchPort']}" if group_watch(v) else ""
    return [Finding("warning", "clusterNetwork.nsgIds", f"is empty, so the nodes this release provisions carry no "
                    f"network security group: the group's ports (the torch store's {d['masterPort']}{watch}, "
                    "vLLM's ZMQ sockets, NCCL's bootstrap) then reach each other only "
                    "where the subnet's security lists admit them, to everyone in the rules' source range, with no "
                    "authentication (hostNetwork; NetworkPolicies do not reach these pods)",
                    "create an NSG that only these nodes will carry, with the rules of examples/nsg-rules.json (TCP "
                    "from itself, the group, plus what the node needs), keep the group's ports out of the subnet's "
                    "security lists (a subnet of the GPU nodes' own, so other workers keep theirs), and set "
                    "clusterNetwork.nsgIds=[OCID] (install --provision takes --nsg)")]


def _sriov_network(v: dict[str, Any]) -> list[Finding]:
    """Multus looks an unqualified network name up in the pod's namespace; Oracle's rdma-vf lives in default."""
    name = v["rdma"]["sriov"]["networkName"]
    if v["rdma"]["mode"] != "sriov" or "/" in name:
        return []
    return [Finding("warning", "rdma.sriov.networkName", f"{name} has no namespace, so Multus looks for it in the "
                    "release's namespace, and Oracle's rdma-vf NetworkAttachmentDefinition lives in default",
                    f"set rdma.sriov.networkName=default/{name}, unless you created {name} in this namespace")]


def _statefulset_roll(v: dict[str, Any]) -> list[Finding]:
    """StatefulSet mode with more than one group: on a pod-template change each of the two StatefulSets replaces its
    pods from the highest ordinal down, one at a time, waiting only for the replaced pod (kubernetes
    pkg/controller/statefulset/stateful_set_control.go, updateStatefulSet); a worker replaced in one group breaks
    that group while another is still rolling, so every group restarts during one roll. LeaderWorkerSet rolls whole
    groups, maxUnavailable 1 by default (kubernetes-sigs/lws pkg/webhooks/leaderworkerset_webhook.go)."""
    if v["workload"]["kind"] != "StatefulSet" or int(v["nodes"]) <= 1:
        return []
    groups = v["autoscaling"]["maxReplicas"] if v["autoscaling"]["enabled"] else v["replicas"]
    if int(groups) <= 1:
        return []
    return [Finding("warning", "workload.kind", f"is StatefulSet with up to {groups} groups, so any change of the pod "
                    "template (an upgrade that changes a value the pods read) restarts every group in one roll, and "
                    "the endpoint stops serving until they have loaded again",
                    "set workload.kind=LeaderWorkerSet, which replaces one group at a time, or plan such upgrades "
                    "as downtime")]


def _placement(v: dict[str, Any]) -> list[Finding]:
    """Pods that select a node label nobody set stay Pending."""
    label = v["placement"]["clusterNetworkLabel"]
    if v["clusterNetwork"]["provision"] or label.get("enabled") is not True:
        return []
    value = label.get("value") or "the cluster network's name (clusterNetwork.name, else RELEASE.NAMESPACE)"
    return [Finding("warning", "placement.clusterNetworkLabel.enabled", f"pods select nodes labelled "
                    f"{label['key']}={value}, and this release does not provision (so does not label) them",
                    f"label the nodes of one cluster network: kubectl label node NODE {label['key']}=VALUE (the "
                    "value the pods select is in `helm rdma template ... | grep cluster-network`), or set "
                    "placement.clusterNetworkLabel.enabled=null")]


def _experimental(v: dict[str, Any], resolved: Resolved) -> list[Finding]:
    """Modes whose image nobody checked against its registry here (README, "Images and digests")."""
    found = []
    if v["distributed"]["backend"] == "ray":
        found.append(Finding(
            "warning", "distributed.backend", "is ray, which is experimental: no registry manifest checked here "
            "shows that an image with Ray ships Ray 2.52 or newer, which token authentication needs (vllm 0.17.1, "
            "the last stock image with Ray, asks only ray[cgraph]>=2.48.0 in its wheel metadata)",
            "check with `ray --version` in the image (2.52 or newer), or set distributed.backend=native"))
    image = resolved.preset.image
    if (resolved.preset.gpu.vendor == "amd" and v["image"]["repository"] == image.repository
            and v["image"]["tag"] == image.tag and not v["image"]["digest"]):
        found.append(Finding(
            "warning", "image.tag", f"is {image.tag} of {image.repository}, the {resolved.preset.name} preset's, "
            "which is experimental: its tag was not checked against the registry here (earlier tags of the same "
            "repository, v0.30.0 and v0.31.0, are in documented use)",
            "pin a tag you have pulled: image.tag=TAG and image.digest=sha256:... (`helm rdma generate "
            "--pin-digests` fails on a tag the registry does not know)"))
    return found
