"""What `doctor --cluster` says about the GPU nodes' own network, under hostNetwork with more than one node: whether
OCI's ingress rules open the group's ports to anyone but the group. The torch store, vLLM's ZMQ sockets, NCCL's
bootstrap and the group watch listen there with no authentication, and Kubernetes NetworkPolicies do not reach
hostNetwork pods. The rules are read and judged by the caller (oci/groupports.py); this module lists the nodes and
words the checks and the fix."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from helm_rdma.cluster.check import SHAPE_LABEL, SHOWN, ClusterCheck
from helm_rdma.cluster.kube import Connection, _failure, _status

CHECK = "group-ports"
# What closes the group's ports: OCI admits what the UNION of a VNIC's subnet security lists and its NSGs admits, so
# the security lists must not admit them, and an NSG only the GPU nodes carry admits them from itself
# (oci/groupports.py). A security list applies to every VNIC in its subnet, so the GPU nodes get a subnet of their
# own, whose list admits what OKE requires of worker nodes (docs.oracle.com/iaas/Content/ContEng/Concepts/
# contengnetworkconfig.htm, "Security Rule Configuration in Security Lists and/or Network Security Groups", worker
# nodes: all traffic from the other workers' CIDR and the pods' CIDR, TCP from the Kubernetes API endpoint, ICMP
# type 3 code 4 path discovery) but not the group's ports. On a flannel cluster that "all traffic from the workers"
# carries the pod overlay, so no OCI rule closes the ports to pods there.
GROUP_PORTS_FIX = ("give the GPU nodes a subnet of their own (so that other workers keep the rules they need), whose "
                   "security list admits what OKE requires of worker nodes (Oracle's \"Security Rule Configuration in "
                   "Security Lists and/or Network Security Groups\": the Kubernetes API endpoint's TCP, ICMP 3/4, and "
                   "from the other workers and pods only what they need) but not the group's ports, and put an NSG "
                   "that only the GPU nodes carry on them that admits TCP from itself (examples/nsg-rules.json): "
                   "clusterNetwork.nsgIds (install --provision --nsg) for nodes this release provisions, the OCI "
                   "console or `oci network vnic update --vnic-id VNIC --nsg-ids '[\"NSG\"]'` for others; on a "
                   "flannel cluster no OCI rule closes them: use VCN-native pod networking (OCI_VCN_IP_NATIVE)")
# The subject of the pod network's own verdict (flannel's overlay).
POD_NETWORK = "pod network"
# The annotations flannel's kube subnet manager writes on every node it runs on: the --kube-annotation-prefix
# default "flannel.alpha.coreos.com" (flannel-io/flannel main.go) + "/backend-type", "/backend-data", "/public-ip",
# "/kube-subnet-manager" (pkg/subnet/kube/annotations.go, newAnnotations).
FLANNEL_ANNOTATIONS = "flannel.alpha.coreos.com/"
# What stays open when OCI's rules pass: traffic that starts on the GPU node never crosses its VNIC's rules.
SAME_NODE = ("pods and hostNetwork processes on the GPU nodes themselves still reach the ports (the chart's pods take "
             "every GPU, so only pods that tolerate the GPU nodes' taints land there, DaemonSets among them): only a "
             "host firewall on the nodes closes that (distributed.portGuard.enabled=true, the default)")
ACCEPTED = "accepted by distributed.allowOpenGroupPorts=true"
# The check's line when each pod's port guard (files/port_guard.py) closes the ports on the node: OCI's rules are not
# read then, since no rule of theirs is the last word.
GUARDED = ("the group's ports ({ports}) are closed on each GPU node by the pods' port guard (distributed.portGuard): "
           "new connections to the serving pods' listeners come only from the node itself and the release's pods, "
           "and pods on a GPU node of the release reach the others only on vllm.port and openPorts")
CHECK_BY_HAND = ("check the node's subnet security lists and its VNICs' NSGs in the OCI console (Instance, Attached "
                 "VNICs)")


def flannel_nodes(nodes: list[dict[str, Any]]) -> list[str]:
    """The names of the nodes flannel annotated (it runs there: the cluster's pods use its overlay)."""
    return sorted(str(n["metadata"]["name"]) for n in nodes
                  if any(k.startswith(FLANNEL_ANNOTATIONS) for k in (n["metadata"].get("annotations") or {})))


def flannel_open(evidence: str) -> str:
    """Why flannel's overlay opens the group's ports, whatever OCI's rules say (``evidence``: how it was seen)."""
    return (f"the cluster's pods use flannel's VXLAN overlay ({evidence}): any pod on any node reaches the GPU nodes' "
            "listeners through it, inside UDP 8472 between the worker nodes, which OKE's worker rules must admit, so "
            "no OCI rule can close the group's ports to pods; the ways on are VCN-native pod networking "
            "(OCI_VCN_IP_NATIVE) with OCI's rules closed, or distributed.allowOpenGroupPorts=true")


def gpu_nodes(connection: Connection, *, shape: str) -> list[dict[str, Any]] | None:
    """The cluster's nodes of ``shape`` (node.kubernetes.io/instance-type), as plain dicts; None when the kube user
    may not list nodes (the cluster checks say so on their own line), none when the API serves no nodes.

    Raises:
        ClusterError: The API server failed or stopped answering.
    """
    from kubernetes import client

    try:
        response = client.CoreV1Api(connection.api_client).list_node(label_selector=f"{SHAPE_LABEL}={shape}",
                                                                     _preload_content=False)
        nodes = json.loads(response.data).get("items") or []
    except Exception as exc:  # the API server's status, urllib3 connection errors, an answer that is not JSON
        if _status(exc) in (401, 403, 404):
            return None if _status(exc) != 404 else []
        raise _failure("listing nodes", exc) from None
    # Filter here too: a selector is a request, and some API servers (and fakes) ignore it.
    return [n for n in nodes if (n.get("metadata", {}).get("labels") or {}).get(SHAPE_LABEL) == shape]


def port_checks(shape: str, found: Mapping[str, tuple[str, ...] | str], *, ports: str,
                accepted: bool = False) -> list[ClusterCheck]:
    """The checks of the GPU nodes' ingress rules: ``found`` maps each node to the rules (as text) that open the
    group's ``ports`` to others, or to why they could not be judged. An open node is an error, or a warning when
    the values accept it (``accepted``: distributed.allowOpenGroupPorts)."""
    if not found:
        return []
    unread = {node: why for node, why in found.items() if isinstance(why, str)}
    open_ = {node: rules for node, rules in found.items() if not isinstance(rules, str) and rules}
    status = "warning" if accepted else "error"
    checks = [ClusterCheck(CHECK, status, node, f"the group's ports ({ports}) are open to more than the group, with "
                           f"no authentication (hostNetwork){'; ' + ACCEPTED if accepted else ''}: "
                           + "; ".join(rules), GROUP_PORTS_FIX)
              for node, rules in sorted(open_.items())]
    checks += [ClusterCheck(CHECK, "warning", node, f"not checked: {why}", CHECK_BY_HAND)
               for node, why in sorted(unread.items())]
    closed = sorted(set(found) - set(unread) - set(open_))
    if closed and not open_:
        shown = ", ".join(closed[:SHOWN]) + (f" and {len(closed) - SHOWN} more" if len(closed) > SHOWN else "")
        checks.append(ClusterCheck(CHECK, "ok", shape, f"no OCI ingress rule opens the group's ports to more than the "
                                   f"group on the {len(closed)} node(s) ({shown}); {SAME_NODE}"))
    return checks
