"""The network security group rules the README documents for the GPU nodes' VNICs, as examples/nsg-rules.json holds
them for the OCI CLI (`oci network nsg rules add --security-rules file://...`, the API's AddSecurityRuleDetails in
its JSON form), checked against the oci SDK's models and against the ports a hostNetwork group listens on.

Rules of the consumers:
- OCI AddSecurityRuleDetails: direction INGRESS|EGRESS, protocol "6" for TCP, sourceType CIDR_BLOCK |
  SERVICE_CIDR_BLOCK | NETWORK_SECURITY_GROUP, tcpOptions.destinationPortRange {min, max}; a rule without tcpOptions
  admits every TCP port (OCI docs "Security Rules"; the SDK's oci.core.models.AddSecurityRuleDetails validates the
  enums when set).
- OCI admits the union of the subnet's security lists and the VNIC's NSGs (docs.oracle.com/iaas/Content/Network/
  Concepts/securityrules.htm, "Comparison of Security Lists and Network Security Groups"): the example closes the
  group's ports only beside security lists that do not admit them, which the judge of install and doctor checks.
- Under hostNetwork every port of the serving pods is a port of the node's VCN address, and Kubernetes
  NetworkPolicies do not reliably apply to hostNetwork pods (FACTS.md "Helm" / NetworkPolicy; kubernetes.io docs
  "Network Policies": "the behavior for hostNetwork pods is undefined").
- What OKE requires of worker nodes (docs.oracle.com/iaas/Content/ContEng/Concepts/contengnetworkconfig.htm, "Security
  Rule Configuration in Security Lists and/or Network Security Groups"; the same rules as Terraform in
  oracle-terraform-modules/terraform-oci-oke modules/network/nsg-workers.tf): ICMP ingress for path discovery (type
  3 code 4 in the docs' tables), the kubelet (TCP 10250) from the control plane, and from the load balancers the
  NodePorts (TCP 30000-32767, Kubernetes' default --service-node-port-range) and kube-proxy's health check (TCP 10256).
  Its "ALL from the other workers / pods / control plane" are what a GPU subnet of its own leaves out: each admits the
  group's ports.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import oci
import pytest

from helm_rdma.resolve.values import resolve

from .rendering import request

REPO = Path(__file__).resolve().parents[1]
RULES = json.loads((REPO / "examples" / "nsg-rules.json").read_text(encoding="utf-8"))


def model(cls: Any, data: dict[str, Any]) -> Any:
    """``data`` (the API's camelCase JSON) as the SDK model ``cls``; its setters refuse values out of their enums."""
    names = {v: k for k, v in cls().attribute_map.items()}
    unknown = set(data) - set(names)
    assert not unknown, f"{cls.__name__} has no {unknown}"
    return cls(**{names[k]: v for k, v in data.items()})


def admits(rule: Any, port: int) -> bool:
    """Whether ``rule`` admits TCP to ``port``."""
    if rule.direction != "INGRESS" or rule.protocol not in ("6", "all"):
        return False
    if rule.tcp_options is None:
        return True
    span = rule.tcp_options["destinationPortRange"]
    return bool(span["min"] <= port <= span["max"])


def test_every_rule_is_an_add_security_rule_the_sdk_accepts() -> None:
    rules = [model(oci.core.models.AddSecurityRuleDetails, r) for r in RULES]
    for rule in rules:
        assert rule.direction == "INGRESS" and rule.protocol in ("6", "1") and rule.is_stateless is False
        assert rule.source_type in ("CIDR_BLOCK", "NETWORK_SECURITY_GROUP")
        if rule.tcp_options:
            span = model(oci.core.models.PortRange, rule.tcp_options["destinationPortRange"])
            assert 1 <= span.min <= span.max <= 65535
        if rule.protocol == "1":
            icmp = model(oci.core.models.IcmpOptions, rule.icmp_options)
            assert (icmp.type, icmp.code) == (3, 4)
    with pytest.raises(ValueError):
        model(oci.core.models.AddSecurityRuleDetails, {**RULES[0], "sourceType": "SUBNET"})


def test_it_carries_what_oke_requires_of_worker_nodes() -> None:
    rules = [model(oci.core.models.AddSecurityRuleDetails, r) for r in RULES]
    assert any(r.protocol == "1" and r.icmp_options == {"type": 3, "code": 4} for r in rules)
    for port in (10250, 10256, 30000, 32767):
        assert any(admits(r, port) and r.source_type == "CIDR_BLOCK" for r in rules), port


@pytest.mark.parametrize("sets", [(), ("workload.kind=StatefulSet",),
                                  ("distributed.backend=ray", "image.tag=v0.17.1",
                                   "distributed.ray.authTokenSecret.name=ray-token")],
                         ids=["lws", "statefulset", "ray"])
def test_the_nsg_itself_admits_every_port_of_the_group_and_outsiders_only_the_api(sets: tuple[str, ...]) -> None:
    v = resolve(request(sets=sets)).values
    assert v["rdma"]["mode"] == "hostNetwork"
    rules = [model(oci.core.models.AddSecurityRuleDetails, r) for r in RULES]
    own = [r for r in rules if r.source_type == "NETWORK_SECURITY_GROUP"]
    outside = [r for r in rules if r.source_type == "CIDR_BLOCK"]
    ports = {v["vllm"]["port"], v["distributed"]["masterPort"], v["distributed"]["groupWatchPort"]}
    if v["distributed"]["backend"] == "ray":
        ray = v["distributed"]["ray"]
        ports |= {ray["port"], ray["clientPort"], ray["dashboardPort"]}
    ports |= {40000, 60999}  # NCCL's bootstrap and vLLM's ZMQ sockets take ephemeral ports
    assert all(any(admits(r, p) for r in own) for p in ports)
    needed = {v["vllm"]["port"], 10250, 10256, *range(30000, 32768)}  # the API, OKE's worker rules
    assert {p for p in range(1, 65536) if any(admits(r, p) for r in outside)} == needed
    assert not needed & (ports - {v["vllm"]["port"]})


def test_the_rdma_doc_shows_the_same_rules() -> None:
    """The docs' block (one line per rule: direction, protocol, ports or ICMP type/code, source) and the example say
    the same."""
    text = (REPO / "docs" / "rdma.md").read_text(encoding="utf-8")
    assert "examples/nsg-rules.json" in text and "clusterNetwork.nsgIds" in text
    lines = re.findall(r"^ingress\s+(TCP|ICMP)\s+(\S+)\s+from (.+?)\s+#", text, flags=re.MULTILINE)
    shown = [(proto, ports, "NSG" in source) for proto, ports, source in lines]
    example = []
    for r in RULES:
        if r["protocol"] == "1":
            example.append(("ICMP", f"{r['icmpOptions']['type']}/{r['icmpOptions']['code']}", False))
            continue
        span = (r.get("tcpOptions") or {}).get("destinationPortRange", {"min": 0, "max": 65535})
        ports = str(span["min"]) if span["min"] == span["max"] else f"{span['min']}-{span['max']}"
        example.append(("TCP", ports, r["sourceType"] == "NETWORK_SECURITY_GROUP"))
    assert shown == example


def test_the_judge_of_install_and_doctor_finds_the_example_closed_and_an_oke_worker_list_open() -> None:
    """The same rules as the API returns them (SecurityRule, this NSG's own OCID as the group's source), judged as
    install, upgrade, the hook and doctor --cluster judge them."""
    from helm_rdma.commands.groupports import group_ports_of
    from helm_rdma.oci.groupports import Member, open_rules

    own = "ocid1.networksecuritygroup.oc1..THIS-NSG"
    models = oci.core.models
    rules = [models.SecurityRule(
        direction=r["direction"], protocol=r["protocol"], source=r["source"], source_type=r["sourceType"],
        description=r["description"], is_stateless=r["isStateless"], is_valid=True,
        tcp_options=models.TcpOptions(destination_port_range=models.PortRange(
            **r["tcpOptions"]["destinationPortRange"])) if "tcpOptions" in r else None) for r in RULES]
    for sets in ((), ("workload.kind=StatefulSet",)):
        ports = group_ports_of(resolve(request(sets=sets)).values)
        assert ports is not None
        assert open_rules(security_lists={}, nsgs={own: rules}, ports=ports, own_nsgs={own: ()}) == ()
        # an NSG that another VNIC carries too (a CPU worker's) admits that worker through its rule from itself
        assert len(open_rules(security_lists={}, nsgs={own: rules}, ports=ports,
                              own_nsgs={own: (Member("ocid1.vnic.oc1..cpu"),)})) == 1
        # beside OKE quick-create's worker subnet list (all protocols from the worker CIDR) the ports are open
        workers = oci.core.models.IngressSecurityRule(protocol="all", source="10.0.10.0/24")
        assert len(open_rules(security_lists={"ocid1.securitylist.oc1..w": [workers]}, nsgs={own: rules},
                              ports=ports, own_nsgs={own: ()})) == 1
