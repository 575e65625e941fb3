"""The judge of the group's ports (oci/groupports.py): which OCI ingress rules admit TCP to the torch store, the group
watch and the kernel's ephemeral ports from anywhere but the node's own NSGs. Rules are the oci SDK's own model
classes, as VirtualNetworkClient returns them.

Rules of the consumers:
- OCI admits what the union of a VNIC's subnet security lists and its NSGs admits (docs.oracle.com/iaas/Content/
  Network/Concepts/securityrules.htm, "Comparison of Security Lists and Network Security Groups": "the union of all
  the rules"): an NSG never closes what a security list admits.
- A rule's fields (docs.oracle.com/iaas/api/#/en/iaas/20160918/datatypes/IngressSecurityRule and SecurityRule; the
  SDK's oci/core/models/ingress_security_rule.py and security_rule.py): ``protocol`` "all" or an IANA number ("6"
  TCP, "17" UDP); ``tcpOptions.destinationPortRange`` {min, max}, inclusive, and no tcpOptions admits every port;
  ``sourceType`` CIDR_BLOCK (the default), SERVICE_CIDR_BLOCK or NETWORK_SECURITY_GROUP, whose source "can be the
  NSG that the rule belongs to ... to control traffic between VNICs in the same NSG"; ``isValid`` turns False when
  the NSG a rule names is deleted.
- OKE's quick-create worker subnet security list admits all protocols from the worker subnet's CIDR
  (docs.oracle.com/iaas/Content/ContEng/Concepts/contengnetworkconfigexample.htm, "Security list for the worker
  node subnet": "Stateful ingress: Allow all traffic from worker nodes", source the worker CIDR, protocol All).
- NCCL's bootstrap and vLLM's ZMQ sockets bind port 0: NVIDIA/nccl src/bootstrap.cc, bootstrapGetUniqueId and
  bootstrapCreateRoot, listen on the interface's address with no port (unless NCCL_COMM_ID names one) and read the
  kernel's choice back with ncclSocketGetAddr; vllm 0.33.0 (the wheel) vllm/utils/network_utils.py:255-259,
  _get_open_port, binds ("", 0) unless VLLM_PORT is set (the chart sets none), and
  vllm/distributed/device_communicators/shm_broadcast.py:573 binds its remote socket to tcp://IP:0 and unpickles what
  it reads (:1003, :1019). Port 0 takes a port of net.ipv4.ip_local_port_range, Linux's default 32768 60999 (kernel
  Documentation/networking/ip-sysctl.rst).
"""

from __future__ import annotations

from typing import Any

import pytest
from oci.core.models import IngressSecurityRule, PortRange, SecurityRule, TcpOptions

from helm_rdma.commands.groupports import group_ports_of, judged_ports
from helm_rdma.errors import HelmRdmaError
from helm_rdma.oci.groupports import EPHEMERAL_HIGH, EPHEMERAL_LOW, Member, group_ports, open_rules
from helm_rdma.resolve.values import resolve

from .rendering import render, request

PORTS = group_ports(master_port=29500, watch_port=29510)
OWN = "ocid1.networksecuritygroup.oc1..own"
OTHER = "ocid1.networksecuritygroup.oc1..other"
LIST = "ocid1.securitylist.oc1..workers"

# OCI's rules are judged only when the pods' port guard is off (distributed.portGuard).
UNGUARDED = "distributed.portGuard.enabled=false"


def tcp(low: int, high: int | None = None) -> TcpOptions:
    return TcpOptions(destination_port_range=PortRange(min=low, max=high or low))


def listed(protocol: str, source: str = "10.0.10.0/24", *, ports: TcpOptions | None = None,
           description: str = "", source_type: str = "CIDR_BLOCK") -> IngressSecurityRule:
    return IngressSecurityRule(protocol=protocol, source=source, source_type=source_type, tcp_options=ports,
                               description=description, is_stateless=False)


def nsg_rule(protocol: str, source: str, *, source_type: str = "CIDR_BLOCK", ports: TcpOptions | None = None,
             direction: str = "INGRESS", valid: bool = True, rule_id: str = "0A1B2C") -> SecurityRule:
    return SecurityRule(protocol=protocol, source=source, source_type=source_type, tcp_options=ports,
                        direction=direction, is_valid=valid, id=rule_id, is_stateless=False)


def judge(*, lists: dict[str, list[Any]] | None = None, nsgs: dict[str, list[Any]] | None = None,
          own: tuple[str, ...] = (OWN,), ports: Any = PORTS, foreign: dict[str, tuple[Member, ...]] | None = None
          ) -> list[str]:
    """The judge's lines; ``own`` the VNIC's NSGs, ``foreign`` their members that are not the group's (none)."""
    members = {nsg: (foreign or {}).get(nsg, ()) for nsg in own}
    return [r.text() for r in open_rules(security_lists=lists or {}, nsgs=nsgs or {}, ports=ports, own_nsgs=members)]


def test_an_oke_quick_create_worker_list_opens_every_port_of_the_group() -> None:
    found = judge(lists={LIST: [listed("all", description="Allow all traffic from worker nodes")]})
    assert found == [f'security list {LIST} ingress rule #0 (the first, "Allow all traffic from worker nodes") admits TCP from '
                     "10.0.10.0/24 to every port"]


def test_a_list_that_admits_only_ssh_and_the_kubelet_opens_nothing() -> None:
    rules = [listed("6", "0.0.0.0/0", ports=tcp(22)), listed("6", "10.0.0.0/28", ports=tcp(10250)),
             listed("1", "0.0.0.0/0"), listed("17", "10.0.10.0/24")]  # ICMP, and UDP to every port: not TCP
    assert judge(lists={LIST: rules}) == []


@pytest.mark.parametrize(("low", "high", "hit"), [
    (29000, 29505, "29500"), (29501, 29509, ""), (29510, 29510, "29510"), (29400, 29600, "29500, 29510"),
    (30000, 40000, f"{EPHEMERAL_LOW}-40000"), (60999, 65535, f"{EPHEMERAL_HIGH}"), (61000, 65535, ""),
    (1, 65535, f"29500, 29510, {EPHEMERAL_LOW}-{EPHEMERAL_HIGH}"),
])
def test_a_port_range_opens_exactly_the_group_ports_inside_it(low: int, high: int, hit: str) -> None:
    found = judge(lists={LIST: [listed("6", ports=tcp(low, high))]})
    assert found == ([f"security list {LIST} ingress rule #0 (the first) admits TCP from 10.0.10.0/24 to {hit}"] if hit else [])


def test_the_group_watch_port_counts_only_where_the_watch_runs() -> None:
    rule = {LIST: [listed("6", ports=tcp(29510))]}
    assert judge(lists=rule, ports=group_ports(master_port=29500, watch_port=None)) == []
    assert len(judge(lists=rule)) == 1


def test_an_nsg_admits_the_group_from_itself_and_nobody_else() -> None:
    rules = [
        nsg_rule("6", OWN, source_type="NETWORK_SECURITY_GROUP", rule_id="000001"),  # the group itself: closed
        nsg_rule("all", OWN, source_type="NETWORK_SECURITY_GROUP", rule_id="000002"),
        nsg_rule("6", "10.0.0.0/16", ports=tcp(8000), rule_id="000003"),  # the API only
        nsg_rule("6", "0.0.0.0/0", direction="EGRESS", rule_id="000004"),  # egress admits nothing in
        nsg_rule("6", "ocid1.networksecuritygroup.oc1..deleted", source_type="NETWORK_SECURITY_GROUP", valid=False,
                 rule_id="000005"),
    ]
    assert judge(nsgs={OWN: rules}) == []


def test_an_nsg_rule_from_elsewhere_is_named_with_its_id_source_and_ports() -> None:
    rules = [nsg_rule("6", OTHER, source_type="NETWORK_SECURITY_GROUP", ports=tcp(29500), rule_id="00AA01"),
             nsg_rule("6", "oci-iad-objectstorage", source_type="SERVICE_CIDR_BLOCK", rule_id="00AA02"),
             nsg_rule("6", "10.0.0.0/16", rule_id="00AA03")]
    assert judge(nsgs={OWN: rules}) == [
        f"NSG {OWN} ingress rule #0 (the first, 00AA01) admits TCP from NSG {OTHER} to 29500",
        f"NSG {OWN} ingress rule #1 (the 2nd, 00AA02) admits TCP from service oci-iad-objectstorage to every port",
        f"NSG {OWN} ingress rule #2 (the 3rd, 00AA03) admits TCP from 10.0.0.0/16 to every port"]
    # The same rule on a node that carries OTHER too admits only the nodes of its own NSGs.
    assert len(judge(nsgs={OWN: rules}, own=(OWN, OTHER))) == 2


def test_an_nsg_never_closes_what_the_subnets_list_admits() -> None:
    """The union of the rules: a tight NSG beside a list that admits everything from the subnet is still open."""
    found = judge(lists={LIST: [listed("all")]}, nsgs={OWN: [nsg_rule("6", OWN, source_type="NETWORK_SECURITY_GROUP")]})
    assert found == [f"security list {LIST} ingress rule #0 (the first) admits TCP from 10.0.10.0/24 to every port"]


@pytest.mark.parametrize(("sets", "spans"), [
    ((), [(29500, 29500), (EPHEMERAL_LOW, EPHEMERAL_HIGH)]),
    (("workload.kind=StatefulSet",), [(29500, 29500), (29510, 29510), (EPHEMERAL_LOW, EPHEMERAL_HIGH)]),
    (("distributed.masterPort=31000",), [(31000, 31000), (EPHEMERAL_LOW, EPHEMERAL_HIGH)]),
    (("rdma.mode=sriov", "rdma.sriov.networkName=default/rdma-vf"), None),  # the pod network: the NetworkPolicy's
], ids=["lws", "statefulset", "master-port", "sriov"])
def test_the_ports_judged_are_the_groups_of_the_values(sets: tuple[str, ...], spans: Any) -> None:
    values = resolve(request(sets=sets)).values
    assert values["nodes"] > 1
    ports = group_ports_of(values)
    assert (None if ports is None else [(s.low, s.high) for s in ports.spans]) == spans
    accepted = resolve(request(sets=(*sets, "distributed.allowOpenGroupPorts=true"))).values
    assert judged_ports(accepted) is None and group_ports_of(accepted) == ports
    guarded = resolve(request(sets=sets)).values  # the default: the port guard closes them on the nodes
    assert judged_ports(guarded) is None
    unguarded = resolve(request(sets=(*sets, UNGUARDED))).values
    assert judged_ports(unguarded) == ports


def test_one_node_has_no_group_ports_on_the_network() -> None:
    values = resolve(request(release="llama70b", preset="h100")).values
    assert values["nodes"] == 1 and group_ports_of(values) is None


# A rule whose source is an NSG admits every VNIC in it (docs.oracle.com/iaas/Content/Network/Concepts/
# networksecuritygroups.htm: a rule's source "can be the NSG that the rule belongs to ... to control traffic between
# VNICs in the same NSG"; its members: VirtualNetworkClient.list_network_security_group_vnics, each a
# NetworkSecurityGroupVnic whose resource_id is "the parent resource that the VNIC is attached to (for example, a
# Compute instance)", the SDK's oci/core/models/network_security_group_vnic.py). In Oracle's own OKE layout the GPU
# nodes' NSG is the cluster-wide "workers" NSG, so its rule from itself admits every worker.
def test_an_nsg_rule_from_itself_is_open_when_the_nsg_holds_more_than_the_group() -> None:
    rule = nsg_rule("all", OWN, source_type="NETWORK_SECURITY_GROUP", rule_id="00BB01")
    cpu = Member(vnic_id="ocid1.vnic.oc1..cpu", instance_id="ocid1.instance.oc1..cpu")
    others = (cpu, Member("ocid1.vnic.oc1..lb"), Member("ocid1.vnic.oc1..c"), Member("ocid1.vnic.oc1..d"))
    assert judge(nsgs={OWN: [rule]}, foreign={OWN: (cpu,)}) == [
        f"NSG {OWN} ingress rule #0 (the first, 00BB01) admits TCP from NSG {OWN}, which admits its members, 1 of "
        "them not the GPU nodes judged (VNIC ocid1.vnic.oc1..cpu of instance ocid1.instance.oc1..cpu) to every port"]
    [named] = judge(nsgs={OWN: [rule]}, foreign={OWN: others})
    assert "4 of them not the GPU nodes judged (VNIC ocid1.vnic.oc1..cpu of instance ocid1.instance.oc1..cpu, " \
           "VNIC ocid1.vnic.oc1..lb, VNIC ocid1.vnic.oc1..c and 1 more)" in named
    # Members only matter where the rule admits the group's ports.
    assert judge(nsgs={OWN: [nsg_rule("6", OWN, source_type="NETWORK_SECURITY_GROUP", ports=tcp(22))]},
                 foreign={OWN: others}) == []


def test_is_valid_false_closes_only_a_rule_whose_source_nsg_was_deleted() -> None:
    """The SDK (oci/core/models/security_rule.py, is_valid): "If the rule's `source` or `destination` is a network
    security group, the value changes to `False` if that network security group is deleted." Nothing else makes it
    False, so a CIDR rule that says False is still judged."""
    cidr = nsg_rule("6", "0.0.0.0/0", valid=False, rule_id="00CC01")
    gone = nsg_rule("6", "ocid1.networksecuritygroup.oc1..gone", source_type="NETWORK_SECURITY_GROUP", valid=False)
    assert judge(nsgs={OWN: [cidr, gone]}) == [
        f"NSG {OWN} ingress rule #0 (the first, 00CC01) admits TCP from 0.0.0.0/0 to every port"]


@pytest.mark.parametrize(("index", "said"), [(0, "#0 (the first)"), (1, "#1 (the 2nd)"), (2, "#2 (the 3rd)"),
                                             (3, "#3 (the 4th)"), (10, "#10 (the 11th)"), (11, "#11 (the 12th)"),
                                             (20, "#20 (the 21st)"), (111, "#111 (the 112th)")])
def test_a_rule_index_counts_from_0_and_says_which_one_a_person_counts(index: int, said: str) -> None:
    rules = [listed("6", ports=tcp(22))] * index + [listed("6", ports=tcp(29500))]
    assert judge(lists={LIST: rules}) == [f"security list {LIST} ingress rule {said} admits TCP from 10.0.10.0/24 "
                                          "to 29500"]


# VLLM_PORT moves vLLM's own sockets to a base port of the user's (vllm 0.33.0 vllm/envs.py VLLM_PORT,
# vllm/utils/network_utils.py get_open_port); NCCL_COMM_ID fixes the bootstrap root's host:port (NVIDIA/nccl
# src/bootstrap.cc, bootstrapGetUniqueId); NCCL_RAS_ADDR moves NCCL's RAS client socket off localhost
# (src/ras/client_support.cc). None of them is on the ports the judge reads.
@pytest.mark.parametrize(("sets", "refused"), [
    (("nccl.settings.NCCL_COMM_ID=10.0.10.5:40000", UNGUARDED), "nccl.settings: NCCL_COMM_ID moves a listener"),
    (("vllm.extraEnv[0].name=NCCL_RAS_ADDR", "vllm.extraEnv[0].value=0.0.0.0:28028", UNGUARDED),
     "vllm.extraEnv: NCCL_RAS_ADDR moves a listener"),
    (("nccl.settings.NCCL_COMM_ID=10.0.10.5:40000", UNGUARDED, "distributed.allowOpenGroupPorts=true"), ""),
    (("nccl.settings.NCCL_COMM_ID=10.0.10.5:40000", "rdma.mode=sriov", "rdma.sriov.networkName=default/rdma-vf"), ""),
    # the port guard matches the pod's sockets wherever they listen (files/port_guard.py)
    (("nccl.settings.NCCL_COMM_ID=10.0.10.5:40000", "vllm.extraEnv[0].name=NCCL_RAS_ADDR",
      "vllm.extraEnv[0].value=0.0.0.0:28028"), ""),
], ids=["comm-id", "ras-addr", "accepted-open", "sriov", "guarded"])
def test_env_that_moves_a_group_listener_is_refused_unless_the_ports_are_accepted_open(
        sets: tuple[str, ...], refused: str) -> None:
    if not refused:
        assert render(*sets)
        return
    with pytest.raises(HelmRdmaError) as error:
        render(*sets)
    assert refused in str(error.value) and "set distributed.allowOpenGroupPorts=true" in str(error.value)
