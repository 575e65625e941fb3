"""The chart's named facts that Python needs outside a render, each a mirror of its helper in
charts/vllm-rdma/templates/_facts.tpl (the home of the fact and of its sources). tests/test_rules.py renders each
helper over the render matrix and holds these functions to it."""

from __future__ import annotations

from typing import Any


def group_watch(values: dict[str, Any]) -> bool:
    """vllm-rdma.groupWatch: the pods of a group watch each other (StatefulSet mode, more than one node)."""
    return bool(values["workload"]["kind"] == "StatefulSet" and values["nodes"] > 1)


def oci_hooks(values: dict[str, Any]) -> bool:
    """vllm-rdma.ociHooks: an OCI hook runs (provisioning, or deprovisioning on uninstall)."""
    network = values.get("clusterNetwork") or {}
    return bool(network.get("provision") or network.get("deleteOnUninstall"))


def port_guard(values: dict[str, Any]) -> bool:
    """vllm-rdma.portGuard: each serving pod runs the port guard (hostNetwork, more than one node, enabled)."""
    return bool(values["rdma"]["mode"] == "hostNetwork" and values["nodes"] > 1
                and values["distributed"]["portGuard"]["enabled"])
