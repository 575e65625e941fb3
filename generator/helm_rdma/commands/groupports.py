"""The group's ports on the node network: which OCI ingress rules open them, for `doctor --cluster` (which reports
them), `install` and `upgrade` (which refuse before helm runs) and the provisioning hook (which refuses before it
creates anything). One judge (oci/groupports.py), two ways to the rules:

- nodes that exist (clusterNetwork.provision false): the GPU nodes of the preset's shape, their instances from
  spec.providerID, each instance's attached VNICs, each VNIC's subnet security lists and NSGs;
- nodes to be provisioned: clusterNetwork.subnetId's security lists and clusterNetwork.nsgIds (the nodes' own NSGs).

The provisioner imports this module: it never imports the chart writer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from helm_rdma.checks.facts import group_watch
from helm_rdma.cluster.check import SHOWN, ClusterCheck
from helm_rdma.cluster.kube import Connection
from helm_rdma.cluster.nodenet import GROUP_PORTS_FIX, gpu_nodes, not_checked, port_checks, provider_ids
from helm_rdma.errors import GroupPortsOpenError, GroupPortsUncheckedError, HelmRdmaError, InputError
from helm_rdma.oci.clients import CountingApi, OciAuth, OciPatience
from helm_rdma.oci.groupports import GroupPorts, OpenRule, RuleReader, group_ports
from helm_rdma.oci.vnics import instance_id, instance_vnics

# A check reads a few objects: it waits on OCI far less than provisioning does.
CHECK_PATIENCE = OciPatience(connect_timeout=5, read_timeout=20, retry_seconds=20, heartbeat_seconds=30)
# What lets a local sign-in read the rules (doctor --cluster, install, upgrade).
LOCAL_SIGN_IN = ("pass --oci-config and --oci-profile, or --auth instancePrincipal on an OCI instance, for a user or "
                 "instance that may read the GPU nodes' instances, VNICs, subnets, security lists and NSGs: inspect "
                 "instance-family, read virtual-network-family")
# What lets the hook's sign-in read them.
HOOK_SIGN_IN = ("a policy that lets the hook's sign-in (clusterNetwork.auth) read virtual-network-family in the "
                "subnet's and the NSGs' compartments, and a clusterNetwork.subnetId and nsgIds that exist")


def group_ports_of(values: dict[str, Any]) -> GroupPorts | None:
    """The ports a group of these values listens on, on each GPU node's VCN address: under hostNetwork with more
    than one node (the torch store, the group watch when it runs, the ephemeral ports); None otherwise (sriov puts
    them on the pod network, where the chart's NetworkPolicy guards them; one node has no peers)."""
    if values["rdma"]["mode"] != "hostNetwork" or int(values["nodes"]) <= 1:
        return None
    d = values["distributed"]
    return group_ports(master_port=int(d["masterPort"]),
                       watch_port=int(d["groupWatchPort"]) if group_watch(values) else None)


def judged_ports(values: dict[str, Any]) -> GroupPorts | None:
    """``group_ports_of``, unless the values accept the ports open (distributed.allowOpenGroupPorts): the ports that
    install, upgrade and the provisioning hook must find closed before they go on."""
    return None if values["distributed"]["allowOpenGroupPorts"] else group_ports_of(values)


def planned_open_rules(api: CountingApi, *, subnet_id: str, nsg_ids: tuple[str, ...],
                       ports: GroupPorts) -> tuple[OpenRule, ...]:
    """The rules that would open ``ports`` on nodes provisioned into ``subnet_id`` with ``nsg_ids`` on their VNIC
    (clusterNetwork.subnetId and nsgIds): the subnet's security lists and those NSGs, the nodes' own NSGs.

    Raises:
        HelmRdmaError: OCI refused or failed a read.
    """
    return RuleReader(api).judge(subnet_ids=(subnet_id,), nsg_ids=nsg_ids, ports=ports)


def require_closed(api: CountingApi, *, subnet_id: str, nsg_ids: tuple[str, ...], ports: GroupPorts | None) -> None:
    """The provisioning hook's check, before anything is created: refuse when the subnet or the NSGs open ``ports``
    (nothing to judge when None).

    Raises:
        GroupPortsOpenError: A rule opens them (names each rule).
        GroupPortsUncheckedError: The rules could not be read.
    """
    if ports is None:
        return
    try:
        found = planned_open_rules(api, subnet_id=subnet_id, nsg_ids=nsg_ids, ports=ports)
    except HelmRdmaError as exc:
        raise GroupPortsUncheckedError(ports=ports.text(), why=str(exc), outcome="nothing was created",
                                       sign_in=HOOK_SIGN_IN) from None
    if found:
        raise GroupPortsOpenError(ports=ports.text(), lines=[r.text() for r in found], outcome="nothing was created",
                                  fix=GROUP_PORTS_FIX)


@dataclass(frozen=True)
class PortsVerdict:
    """What the judge found for each subject (a GPU node, or the subnet of the nodes to be provisioned): the rules
    that open the group's ports, as text (none: closed), or why that subject was not judged; ``note`` says why
    nothing at all was judged. ``beyond`` says what install cannot judge and doctor leaves to its other lines: no
    GPU node yet (its nodes check says so), nodes whose spec.providerID names no OCI instance (no OCI rules of
    ours to read)."""

    ports: GroupPorts
    found: tuple[tuple[str, tuple[str, ...] | str], ...] = ()
    note: str = ""
    beyond: str = ""

    @property
    def opened(self) -> list[str]:
        return [f"{subject}: {rule}" for subject, rules in self.found if not isinstance(rules, str) for rule in rules]

    @property
    def unjudged(self) -> list[str]:
        return [n for n in (self.beyond, self.note) if n] + [f"{subject}: {why}" for subject, why in self.found
                                                            if isinstance(why, str)]


def judge(values: dict[str, Any], *, ports: GroupPorts, connection: Connection | None, oci: OciAuth) -> PortsVerdict:
    """Judge the group's ``ports`` on the nodes of these values: the planned subnet and NSGs when the release
    provisions them, else the GPU nodes of the preset's shape that ``connection`` lists (None: no cluster).

    Raises:
        ClusterError: The API server stopped answering.
    """
    network = values.get("clusterNetwork") or {}
    if network.get("provision"):
        subnet = str(network.get("subnetId") or "")
        if not subnet:
            return PortsVerdict(ports, note="clusterNetwork.subnetId is empty, so there is no subnet to read")
        api = _sign_in(oci)
        if isinstance(api, str):
            return PortsVerdict(ports, note=api)
        subject = f"clusterNetwork.subnetId {subnet}"
        try:
            rules = planned_open_rules(api, subnet_id=subnet, nsg_ids=tuple(network.get("nsgIds") or ()), ports=ports)
        except HelmRdmaError as exc:
            return PortsVerdict(ports, found=((subject, str(exc)),))
        return PortsVerdict(ports, found=((subject, tuple(r.text() for r in rules)),))
    if connection is None:
        return PortsVerdict(ports, note="no kubeconfig, so the GPU nodes could not be listed")
    shape = str(values["preset"]["shape"])
    nodes = gpu_nodes(connection, shape=shape)
    if nodes is None:
        return PortsVerdict(ports, note="the kube user may not list nodes, so the GPU nodes could not be read")
    if not nodes:
        return PortsVerdict(ports, beyond=f"no node of shape {shape} is in the cluster yet, so there are no rules to "
                                          "read (with clusterNetwork.provision the planned subnet is read instead)")
    instances = {node: ocid for node, pid in provider_ids(nodes).items() if (ocid := instance_id(pid))}
    foreign = sorted(str(n["metadata"]["name"]) for n in nodes if str(n["metadata"]["name"]) not in instances)
    beyond = (f"{len(foreign)} GPU node(s) ({', '.join(foreign[:SHOWN])}{' ...' if len(foreign) > SHOWN else ''}) "
              "name no OCI instance in spec.providerID, so their rules could not be read") if foreign else ""
    found: dict[str, tuple[str, ...] | str] = {}
    if instances:
        api = _sign_in(oci, count=len(instances))
        if isinstance(api, str):
            return PortsVerdict(ports, note=api, beyond=beyond)
        reader = RuleReader(api)
        read = {i.instance_id: i for i in instance_vnics(api, instances.values())}
        for node, ocid in instances.items():
            try:
                found[node] = read[ocid].problem or tuple(r.text() for r in reader.judge_vnics(read[ocid].vnics,
                                                                                                ports=ports))
            except HelmRdmaError as exc:
                found[node] = str(exc)
    return PortsVerdict(ports, found=tuple(sorted(found.items())), beyond=beyond)


def _sign_in(oci: OciAuth, *, count: int = 0) -> CountingApi | str:
    """An OCI session for ``oci``, or why there is none.

    Raises:
        InputError: The config names no such profile, or its key file cannot be read (the user's to fix).
    """
    if oci.mode == "apiKey" and not os.path.isfile(os.path.expanduser(oci.config_file)):
        nodes = f" of the {count} GPU node(s)" if count else ""
        return f"no OCI config at {oci.config_file}, so the ingress rules{nodes} were not read"
    try:
        return CountingApi.connect(oci, patience=CHECK_PATIENCE)
    except InputError:  # a profile the config lacks, a key file missing: the user's to fix (exit 2), no guess
        raise
    except HelmRdmaError as exc:
        return str(exc)


def group_port_checks(values: dict[str, Any], *, connection: Connection, oci: OciAuth) -> list[ClusterCheck]:
    """doctor --cluster's lines about the group's ports: an error per node (or planned subnet) whose rules open them
    (a warning when distributed.allowOpenGroupPorts accepts it), ok when none does, not checked and why otherwise;
    nothing when the group's ports are not on the node network.

    Raises:
        ClusterError: The API server stopped answering.
    """
    ports = group_ports_of(values)
    if ports is None:
        return []
    verdict = judge(values, ports=ports, connection=connection, oci=oci)
    shape = str(values["preset"]["shape"])
    checks = port_checks(shape, dict(verdict.found), ports=ports.text(),
                         accepted=bool(values["distributed"]["allowOpenGroupPorts"]))
    if verdict.note:
        checks.append(not_checked(shape, verdict.note, LOCAL_SIGN_IN))
    return checks


def require_judged_closed(verdict: PortsVerdict) -> None:
    """install's and upgrade's refusal, before helm runs.

    Raises:
        GroupPortsOpenError: A rule opens the group's ports (names each rule, with the node or subnet).
        GroupPortsUncheckedError: Some node, or the planned subnet, could not be judged.
    """
    outcome = "nothing was installed"
    if verdict.opened:
        raise GroupPortsOpenError(ports=verdict.ports.text(), lines=verdict.opened, outcome=outcome,
                                  fix=GROUP_PORTS_FIX)
    if verdict.unjudged:
        raise GroupPortsUncheckedError(ports=verdict.ports.text(), why="; ".join(verdict.unjudged), outcome=outcome,
                                       sign_in=LOCAL_SIGN_IN)
