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
from helm_rdma.cluster.kube import Connection
from helm_rdma.errors import ClusterError

CHECK = "group-ports"
# What closes the group's ports: OCI admits what the UNION of a VNIC's subnet security lists and its NSGs admits, so
# the security lists must not admit them, and an NSG on the GPU nodes admits them from itself (oci/groupports.py).
GROUP_PORTS_FIX = ("the GPU nodes' subnet security lists must not admit the group's ports (nor all protocols) from "
                   "anywhere: an OKE quick-create worker subnet's list admits all protocols from the worker CIDR, so "
                   "give the GPU nodes' subnet a security list without that rule (or give the GPU nodes a subnet of "
                   "their own), and put an NSG on the GPU nodes that admits TCP from itself (the group) plus what the "
                   "node needs (examples/nsg-rules.json): clusterNetwork.nsgIds (install --provision --nsg) for nodes "
                   "this release provisions, the OCI console or `oci network vnic update --vnic-id VNIC --nsg-ids "
                   "'[\"NSG\"]'` for others")
ACCEPTED = "accepted by distributed.allowOpenGroupPorts=true"
CHECK_BY_HAND = ("check the node's subnet security lists and its VNICs' NSGs in the OCI console (Instance, Attached "
                 "VNICs)")


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
    except client.ApiException as exc:
        if exc.status in (401, 403, 404):
            return None if exc.status != 404 else []
        raise ClusterError(action="listing nodes", reason=f"HTTP {exc.status} {exc.reason}") from None
    except Exception as exc:  # urllib3 connection errors, an answer that is not JSON
        raise ClusterError(action="listing nodes", reason=str(exc)) from None
    # Filter here too: a selector is a request, and some API servers (and fakes) ignore it.
    return [n for n in nodes if (n.get("metadata", {}).get("labels") or {}).get(SHAPE_LABEL) == shape]


def provider_ids(nodes: list[dict[str, Any]]) -> dict[str, str]:
    """Node name -> spec.providerID, for the nodes that have one."""
    return {str(n["metadata"]["name"]): str(n["spec"]["providerID"]) for n in nodes
            if (n.get("spec") or {}).get("providerID")}


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
                                   f"group on the {len(closed)} node(s) ({shown})"))
    return checks


def not_checked(shape: str, why: str, fix: str) -> ClusterCheck:
    """The line that says the nodes' ingress rules were not judged, and how to have them judged."""
    return ClusterCheck(CHECK, "warning", shape, f"not checked: {why}", fix)
