"""Which OCI ingress rules open a hostNetwork group's own ports to anyone but the group: the one judge that
`doctor --cluster`, `install`/`upgrade` and the provisioning hook use.

Under hostNetwork the torch store (distributed.masterPort), NCCL's bootstrap and vLLM's ZMQ sockets (both bind port
0: a port of the kernel's ephemeral range) and the group watch (distributed.groupWatchPort) listen on the GPU node's
VCN address, with no authentication; Kubernetes NetworkPolicies do not reach hostNetwork pods. What reaches a VNIC is
what the UNION of its subnet's security lists and its network security groups admits (docs.oracle.com, "Comparison of
Security Lists and Network Security Groups": "the union of all the rules"): an NSG can open a port, never close one a
security list admits. So every rule of either kind that admits TCP to those ports from anywhere but the group is a
path to the serving process. A rule whose source is one of the VNIC's own NSGs admits every VNIC in that NSG
(VirtualNetworkClient.list_network_security_group_vnics lists them): it is closed only while every member is a VNIC
of the group's own nodes.

The rules are the SDK's models: a security list's IngressSecurityRule (VirtualNetworkClient.get_security_list,
``ingress_security_rules``) and an NSG's SecurityRule (list_network_security_group_security_rules, direction
INGRESS). Their fields: ``protocol`` ("6" TCP, "all", or another IANA number), ``source`` and ``source_type``
(CIDR_BLOCK, SERVICE_CIDR_BLOCK, NETWORK_SECURITY_GROUP), ``tcp_options.destination_port_range.min/max`` (no
``tcp_options``, or no range, is every port), and for NSG rules ``is_valid`` (the SDK's security_rule.py: "If the
rule's `source` or `destination` is a network security group, the value changes to `False` if that network security
group is deleted": only such a rule admits nothing; False on any other rule is not trusted to close anything).

These are OCI's rules only: traffic that never crosses a VNIC's rules (pods on the GPU nodes themselves, or a pod
overlay such as flannel's VXLAN, which the workers' rules must admit) is judged by the caller (commands/groupports.py).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from helm_rdma.oci.clients import CountingApi
from helm_rdma.oci.vnics import Vnic

TCP = "6"
ALL_PROTOCOLS = "all"
NSG_SOURCE = "NETWORK_SECURITY_GROUP"
SERVICE_SOURCE = "SERVICE_CIDR_BLOCK"
SECURITY_LIST, NSG = "security list", "NSG"
# The kernel's ephemeral ports, where NCCL's bootstrap and vLLM's ZMQ sockets listen (they bind port 0). This assumes
# Linux's default net.ipv4.ip_local_port_range, 32768 60999 (kernel Documentation/networking/ip-sysctl.rst); a node
# with another range needs its own rules.
EPHEMERAL_LOW, EPHEMERAL_HIGH = 32768, 60999


@dataclass(frozen=True)
class PortSpan:
    """Ports ``low``-``high`` (inclusive) and what listens there (``what``, with a {} where the ports go)."""

    low: int
    high: int
    what: str

    def text(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


@dataclass(frozen=True)
class GroupPorts:
    """The ports a group listens on, on each node's VCN address."""

    spans: tuple[PortSpan, ...]

    def text(self) -> str:
        """"the torch store's 29500, ..." as a message shows them (``what`` holds a {} for the ports)."""
        parts = [s.what.format(s.text()) for s in self.spans]
        return ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else parts[0]


def group_ports(*, master_port: int, watch_port: int | None) -> GroupPorts:
    """The group's ports: the torch store, the group watch when it runs (None: it does not), the ephemeral range."""
    spans = [PortSpan(master_port, master_port, "the torch store's {}")]
    if watch_port is not None:
        spans.append(PortSpan(watch_port, watch_port, "the group watch's {}"))
    spans.append(PortSpan(EPHEMERAL_LOW, EPHEMERAL_HIGH, "NCCL's bootstrap and vLLM's ZMQ sockets on the kernel's "
                                                         "default ephemeral ports, {}"))
    return GroupPorts(spans=tuple(spans))


# How many foreign members of an NSG a refusal names (then "and N more").
MEMBERS_SHOWN = 3


@dataclass(frozen=True)
class Member:
    """One VNIC in an NSG (NetworkSecurityGroupVnic): its OCID and the instance it is attached to ("" when the API
    gives none)."""

    vnic_id: str
    instance_id: str = ""

    def text(self) -> str:
        return f"VNIC {self.vnic_id}" + (f" of instance {self.instance_id}" if self.instance_id else "")


def _ordinal(index: int) -> str:
    """ "the first" for 0, "the 2nd" for 1, ... (a rule's place counted from 1, as a person counts)."""
    n = index + 1
    if n == 1:
        return "the first"
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"the {n}{suffix}"


@dataclass(frozen=True)
class OpenRule:
    """One ingress rule that admits TCP to the group's ports from outside the group.

    Attributes:
        holder: The OCID of the security list or NSG the rule belongs to.
        kind: "security list" or "NSG".
        index: The rule's place among the holder's ingress rules (from 0, as the API lists them; the text says
            both: "rule #0 (the first)").
        description: The rule's own description ("" when it has none).
        source: Where the rule admits traffic from, with its kind unless a CIDR block.
        ports: The group's ports it admits.
        rule_id: An NSG rule's id (security list rules have none).
    """

    holder: str
    kind: str
    index: int
    description: str
    source: str
    ports: str
    rule_id: str = ""

    def text(self) -> str:
        named = ", ".join(p for p in (_ordinal(self.index), self.rule_id,
                                      f'"{self.description}"' if self.description else "") if p)
        return (f"{self.kind} {self.holder} ingress rule #{self.index} ({named}) admits TCP from {self.source} to "
                f"{self.ports}")


def _admitted(rule: Any, ports: GroupPorts) -> str:
    """The group's ports ``rule`` admits over TCP, as text ("" for none)."""
    if str(rule.protocol).lower() not in (TCP, ALL_PROTOCOLS):
        return ""
    options = rule.tcp_options if str(rule.protocol) == TCP else None
    span = options.destination_port_range if options is not None else None
    if span is None:
        return "every port"
    low, high = int(span.min), int(span.max)
    hit = [PortSpan(max(low, s.low), min(high, s.high), s.what) for s in ports.spans if low <= s.high and s.low <= high]
    return ", ".join(h.text() for h in hit)


def _source(rule: Any) -> str:
    if rule.source_type == NSG_SOURCE:
        return f"NSG {rule.source}"
    if rule.source_type == SERVICE_SOURCE:
        return f"service {rule.source}"
    return str(rule.source)


def _members_text(nsg: str, foreign: Sequence[Member]) -> str:
    shown = ", ".join(m.text() for m in foreign[:MEMBERS_SHOWN])
    more = f" and {len(foreign) - MEMBERS_SHOWN} more" if len(foreign) > MEMBERS_SHOWN else ""
    return f"NSG {nsg}, which admits its members, {len(foreign)} of them not the GPU nodes judged ({shown}{more})"


def _closed_by_nsg(rule: Any, own_nsgs: Mapping[str, Sequence[Member]]) -> bool:
    """Whether ``rule`` admits nobody: its NSG source was deleted (is_valid False, which the SDK documents only for
    NSG sources), or it is one of the VNIC's own NSGs with no member outside the group."""
    if rule.source_type != NSG_SOURCE:
        return False
    return rule.is_valid is False or (rule.source in own_nsgs and not own_nsgs[rule.source])


def open_rules(*, security_lists: Mapping[str, Sequence[Any]], nsgs: Mapping[str, Sequence[Any]],
               ports: GroupPorts, own_nsgs: Mapping[str, Sequence[Member]]) -> tuple[OpenRule, ...]:
    """Every rule that admits TCP to any of ``ports`` from anyone but the group.

    Args:
        security_lists: Security list OCID -> its ingress rules (IngressSecurityRule): a subnet's lists apply to
            every VNIC in it, and their sources are CIDR blocks or services, never the group alone.
        nsgs: NSG OCID -> its rules (SecurityRule); egress rules, and rules whose source NSG was deleted, are passed
            over.
        ports: The group's ports.
        own_nsgs: The NSGs of the VNIC being judged, each with its members that are not the group's own VNICs
            (none: only the group is in it): a rule whose source is one of them admits its members, so it is open
            when any of them is foreign.
    """
    found = []
    for holder, rules in security_lists.items():
        for index, rule in enumerate(rules):
            if admitted := _admitted(rule, ports):
                found.append(OpenRule(holder, SECURITY_LIST, index, rule.description or "", _source(rule), admitted))
    for holder, rules in nsgs.items():
        ingress = [r for r in rules if r.direction == "INGRESS"]
        for index, rule in enumerate(ingress):
            if _closed_by_nsg(rule, own_nsgs):
                continue
            if admitted := _admitted(rule, ports):
                source = (_members_text(rule.source, own_nsgs[rule.source])
                          if rule.source_type == NSG_SOURCE and rule.source in own_nsgs else _source(rule))
                found.append(OpenRule(holder, NSG, index, rule.description or "", source, admitted,
                                      rule_id=rule.id or ""))
    return tuple(found)


class RuleReader:
    """Reads subnets' security lists and NSGs' rules from OCI, each subnet, security list and NSG once, and judges
    them with ``open_rules``."""

    def __init__(self, api: CountingApi) -> None:
        self.api = api
        self._subnets: dict[str, tuple[str, ...]] = {}
        self._lists: dict[str, list[Any]] = {}
        self._nsgs: dict[str, list[Any]] = {}
        self._members: dict[str, tuple[Member, ...]] = {}

    def security_lists(self, subnet_id: str) -> dict[str, list[Any]]:
        """The ingress rules of each security list of the subnet (GetSubnet, then GetSecurityList)."""
        if subnet_id not in self._subnets:
            self._subnets[subnet_id] = tuple(self.api.call("get_subnet", subnet_id).security_list_ids or ())
        for ocid in self._subnets[subnet_id]:
            if ocid not in self._lists:
                self._lists[ocid] = list(self.api.call("get_security_list", ocid).ingress_security_rules or ())
        return {ocid: self._lists[ocid] for ocid in self._subnets[subnet_id]}

    def nsg_rules(self, nsg_ids: Iterable[str]) -> dict[str, list[Any]]:
        """The ingress rules of each NSG (ListNetworkSecurityGroupSecurityRules, every page)."""
        for ocid in nsg_ids:
            if ocid not in self._nsgs:
                self._nsgs[ocid] = self.api.all_pages("list_network_security_group_security_rules", ocid,
                                                      direction="INGRESS")
        return {ocid: self._nsgs[ocid] for ocid in nsg_ids}

    def members(self, nsg_id: str) -> tuple[Member, ...]:
        """The VNICs in an NSG (ListNetworkSecurityGroupVnics, every page)."""
        if nsg_id not in self._members:
            self._members[nsg_id] = tuple(Member(vnic_id=str(m.vnic_id), instance_id=str(m.resource_id or ""))
                                          for m in self.api.all_pages("list_network_security_group_vnics", nsg_id))
        return self._members[nsg_id]

    def judge(self, vnic: Vnic, *, ports: GroupPorts, group: Collection[str]) -> tuple[OpenRule, ...]:
        """The rules that open ``ports`` on ``vnic``, by its subnet's security lists and its NSGs (see
        ``open_rules``): the members of each own NSG a rule admits from are read, and every one that is not in
        ``group`` (the VNIC and instance OCIDs of the group's own nodes), by its VNIC or by the instance it is
        attached to, is foreign.

        Raises:
            HelmRdmaError: OCI refused or failed a read (see oci.clients).
        """
        lists, nsg_ids = self.security_lists(vnic.subnet_id), vnic.nsg_ids
        rules = self.nsg_rules(nsg_ids)
        named = {r.source for held in rules.values() for r in held if r.direction == "INGRESS"
                 and r.source_type == NSG_SOURCE and r.source in nsg_ids and _admitted(r, ports)}
        own = {nsg: tuple(m for m in self.members(nsg) if m.vnic_id not in group and m.instance_id not in group)
                    if nsg in named else ()
               for nsg in nsg_ids}
        return open_rules(security_lists=lists, nsgs=rules, ports=ports, own_nsgs=own)

    def judge_vnics(self, vnics: Iterable[Vnic], *, ports: GroupPorts,
                    group: Collection[str]) -> tuple[OpenRule, ...]:
        """The rules that open ``ports`` on any of one node's ``vnics``, each rule once (see ``judge``).

        Raises:
            HelmRdmaError: OCI refused or failed a read (see oci.clients).
        """
        found: dict[tuple[str, int], OpenRule] = {}
        for vnic in vnics:
            for rule in self.judge(vnic, ports=ports, group=group):
                found.setdefault((rule.holder, rule.index), rule)
        return tuple(found.values())
