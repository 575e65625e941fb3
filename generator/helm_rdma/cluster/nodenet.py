"""What `doctor --cluster` says about the GPU nodes' own network, under hostNetwork: whether each node's VNICs carry a
network security group. The group's ports (the torch store, vLLM's ZMQ sockets, NCCL's bootstrap, the group watch)
listen there with no authentication, and Kubernetes NetworkPolicies do not reach hostNetwork pods; on OCI an NSG on
the VNIC is what closes them. The VNICs are read from OCI by the caller (oci/vnics.py); this module lists the nodes
and words the checks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from helm_rdma.cluster.check import SHAPE_LABEL, SHOWN, ClusterCheck
from helm_rdma.cluster.kube import Connection
from helm_rdma.errors import ClusterError

CHECK = "node-nsg"
NSG_FIX = ("attach an NSG that admits the group's ports only from the nodes' subnet (examples/nsg-rules.json) to "
           "these VNICs: clusterNetwork.nsgIds (install --provision --nsg) for nodes this release provisions, the "
           "OCI console or `oci network vnic update --vnic-id VNIC --nsg-ids '[\"NSG\"]'` for others")


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


def nsg_checks(shape: str, found: Mapping[str, tuple[str, ...] | str]) -> list[ClusterCheck]:
    """The checks of the GPU nodes' VNICs: ``found`` maps each node to the OCIDs of its attached VNICs that carry
    no NSG, or to why they could not be read."""
    if not found:
        return []
    unread = {node: why for node, why in found.items() if isinstance(why, str)}
    open_ = {node: vnics for node, vnics in found.items() if not isinstance(vnics, str) and vnics}
    checks = [ClusterCheck(CHECK, "warning", node, f"VNIC(s) {', '.join(vnics)} carry no network security group, so "
                           "the group's ports (torch store, group watch, vLLM's ZMQ sockets, NCCL's bootstrap) are "
                           "open to the whole VCN with no authentication (hostNetwork)", NSG_FIX)
              for node, vnics in sorted(open_.items())]
    checks += [ClusterCheck(CHECK, "warning", node, f"not checked: {why}",
                            "check the node's VNICs in the OCI console (Instance, Attached VNICs)")
               for node, why in sorted(unread.items())]
    guarded = sorted(set(found) - set(unread) - set(open_))
    if guarded and not checks:
        shown = ", ".join(guarded[:SHOWN]) + (f" and {len(guarded) - SHOWN} more" if len(guarded) > SHOWN else "")
        checks.append(ClusterCheck(CHECK, "ok", shape, f"every attached VNIC of the {len(guarded)} node(s) carries "
                                   f"a network security group ({shown})"))
    return checks


def not_checked(shape: str, why: str, fix: str) -> ClusterCheck:
    """The line that says the nodes' VNICs were not read, and how to have them read."""
    return ClusterCheck(CHECK, "warning", shape, f"not checked: {why}", fix)
