"""The group's ports on the node network: which OCI ingress rules open them, for `doctor --cluster` (which reports
them), `install` and `upgrade` (which refuse before helm runs) and the provisioning hook (which refuses before it
creates anything). One judge (oci/groupports.py), two ways to the rules:

- nodes that exist (clusterNetwork.provision false): the GPU nodes of the preset's shape, their instances from
  spec.providerID, each instance's attached VNICs, each VNIC's subnet security lists and NSGs; an NSG a rule admits
  from must hold only these nodes' VNICs;
- nodes to be provisioned: the VNICs they will get (clusterNetwork.subnetId, and clusterNetwork.nsgIds or, with
  clusterNetwork.instanceConfigurationId, that configuration's NSGs and secondary VNICs); the hook, which knows the
  network's name, also judges the live VNICs of a network that exists already and refuses when its nodes have other
  NSGs or another subnet than the values say. install and upgrade, which do not know the name the chart gives it,
  count the nodes of every live network tagged with the release (and its namespace when known) as the group. An
  NSG a rule admits from must hold only that network's nodes.

OCI's rules are not every path: on a flannel cluster every pod reaches the GPU nodes' listeners through the VXLAN
overlay (UDP between the workers, which OKE's worker rules must admit), so the ports count as open there; the CNI is
read from flannel's node annotations or the OKE cluster (clusterNetwork.oke.clusterId). Pods and hostNetwork processes
on the GPU nodes themselves never cross a VNIC's rules: only a host firewall on the nodes closes that (the texts say
so even when the judge passes).

The provisioner imports this module: it never imports the chart writer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from helm_rdma.checks.facts import group_watch, port_guard
from helm_rdma.cluster.check import SHOWN, ClusterCheck
from helm_rdma.cluster.kube import Connection
from helm_rdma.cluster.nodenet import (
    CHECK,
    GROUP_PORTS_FIX,
    GUARDED,
    POD_NETWORK,
    flannel_nodes,
    flannel_open,
    gpu_nodes,
    port_checks,
)
from helm_rdma.errors import (
    GroupPortsOpenError,
    GroupPortsUncheckedError,
    HelmRdmaError,
    InputError,
    NetworkMismatchError,
    OciRequestError,
)
from helm_rdma.oci.clients import CountingApi, OciAuth, OciPatience
from helm_rdma.oci.groupports import GroupPorts, RuleReader, group_ports
from helm_rdma.oci.network import TAG_NAMESPACE, TAG_RELEASE, NetworkSpec, deprovision_command, survey
from helm_rdma.oci.nodejoin import VCN_NATIVE
from helm_rdma.oci.vnics import InstanceVnics, Vnic, configured_vnics, instance_id, instance_vnics
from helm_rdma.oci.waiting import DEAD, state_of

# A check reads a few objects: it waits on OCI far less than provisioning does.
CHECK_PATIENCE = OciPatience(connect_timeout=5, read_timeout=20, retry_seconds=20, heartbeat_seconds=30)
# What lets a local sign-in read the rules (doctor --cluster, install, upgrade).
LOCAL_SIGN_IN = ("pass --oci-config and --oci-profile, or --auth instancePrincipal on an OCI instance, for a user or "
                 "instance that may read the GPU nodes' instances, VNICs, subnets, security lists and NSGs (and the "
                 "OKE cluster): inspect instance-family, read virtual-network-family, read clusters")
# What lets the hook's sign-in read them.
HOOK_SIGN_IN = ("a policy that lets the hook's sign-in (clusterNetwork.auth) read virtual-network-family in the "
                "subnet's and the NSGs' compartments and the OKE cluster, and a clusterNetwork.subnetId, nsgIds and "
                "oke.clusterId that exist")
# The OKE cluster's pod networking (ContainerEngineClient.get_cluster, cluster_pod_network_options[].cni_type; the
# SDK's container_engine/models/cluster_pod_network_option_details.py).
FLANNEL = "FLANNEL_OVERLAY"
# A verdict entry: a subject (a node, the planned subnet, the pod network) and the rules that open the ports there
# (as text; none: closed), or why it was not judged.
Found = tuple[str, "tuple[str, ...] | str"]


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
    """``group_ports_of``, unless each pod's port guard closes them on the node (distributed.portGuard, the default)
    or the values accept them open (distributed.allowOpenGroupPorts): the ports that install, upgrade and the
    provisioning hook must find closed in OCI's rules before they go on."""
    if port_guard(values) or values["distributed"]["allowOpenGroupPorts"]:
        return None
    return group_ports_of(values)


def pod_vnics(oke: dict[str, Any]) -> Vnic | None:
    """The VNICs VCN-native pods get on each node (clusterNetwork.oke.podSubnetId and podNsgIds), None without a pod
    subnet. They are attached to the node's instance, so the existing-node path judges them with the node's own; the
    planned path judges them too, so that both say the same of the same nodes (whether a listener the group binds on
    every address answers on them depends on the CNI's plumbing, and the judge errs toward open)."""
    subnet = str(oke.get("podSubnetId") or "")
    return Vnic(vnic_id="the pods' VNICs on each node", subnet_id=subnet,
                nsg_ids=tuple(oke.get("podNsgIds") or ())) if subnet else None


def planned_vnics(api: CountingApi, *, subnet_id: str, nsg_ids: tuple[str, ...], config_id: str,
                  pods: Vnic | None = None) -> tuple[Vnic, ...]:
    """The VNICs nodes provisioned into ``subnet_id`` get: with an instance configuration of the user's
    (clusterNetwork.instanceConfigurationId) its own (clusterNetwork.nsgIds are not used then), else one primary VNIC
    carrying ``nsg_ids``; and ``pods``, the VCN-native pods' VNICs (see ``pod_vnics``).

    Raises:
        HelmRdmaError: OCI refused or failed a read.
    """
    extra = (pods,) if pods is not None else ()
    if config_id:
        return configured_vnics(api, config_id, subnet_id=subnet_id) + extra
    return (Vnic(vnic_id="the primary VNIC of each node", subnet_id=subnet_id, nsg_ids=nsg_ids, primary=True), *extra)


def pod_network(api: CountingApi | None, *, cluster_id: str, nodes: list[dict[str, Any]] | None) -> Found | None:
    """Whether pods reach the GPU nodes' listeners past OCI's rules: a finding for the pod network on a flannel
    cluster (flannel's node annotations, or the OKE cluster's CNI), or why the CNI is unknown; None when pods have
    VCN addresses (OCI_VCN_IP_NATIVE), whose VNICs OCI's rules judge. ``nodes`` None: the nodes are to be
    provisioned, so only the cluster can tell, and with no ``cluster_id`` the CNI is unknown.

    Raises:
        HelmRdmaError: OCI refused or failed the read of the cluster.
    """
    annotated = flannel_nodes(nodes or [])
    if annotated:
        return POD_NETWORK, (flannel_open(f"flannel's annotations on node(s) {', '.join(annotated[:SHOWN])}"),)
    if not cluster_id:
        if nodes is not None:
            return None  # flannel's kube subnet manager annotates every node it runs on: none did
        return POD_NETWORK, ("clusterNetwork.oke.clusterId is empty, so the cluster's pod networking (flannel's "
                             "overlay, or VCN-native) is unknown")
    if api is None:
        return None
    cluster = api.call("get_cluster", cluster_id)
    cni = next((o.cni_type for o in cluster.cluster_pod_network_options or [] if o.cni_type), "")
    if cni == FLANNEL:
        return POD_NETWORK, (flannel_open(f"cluster {cluster_id}'s CNI is {FLANNEL}"),)
    if cni == VCN_NATIVE:
        return None
    return POD_NETWORK, f"cluster {cluster_id}'s CNI is {cni or 'not given'}, so its pod network was not judged"


def _differences(planned: tuple[Vnic, ...], live: list[InstanceVnics], *, network: Any, used: tuple[Vnic, ...],
                 subnet_id: str) -> list[tuple[str, str, str]]:
    """What the nodes of a network that exists get, where it differs from what the values plan: the subnet it
    places them in, the NSGs of its instance configuration's primary VNIC, each instance's primary VNIC."""
    asked = ", ".join(sorted(planned[0].nsg_ids)) or "no NSG"
    found = []
    placement = getattr(network, "placement_configuration", None)
    subnets = getattr(placement, "primary_vnic_subnets", None)
    placed = str(getattr(subnets, "subnet_id", None) or getattr(placement, "primary_subnet_id", None) or "")
    if placed and placed != subnet_id:
        found.append(("the subnet its nodes are placed in", placed, subnet_id))
    if used and (now := ", ".join(sorted(used[0].nsg_ids)) or "no NSG") != asked:
        found.append(("the NSGs of the primary VNIC its instance configuration gives new nodes", now, asked))
    for node in live:
        for vnic in (v for v in node.vnics if v.primary):
            if vnic.subnet_id != subnet_id:
                found.append((f"the subnet of instance {node.instance_id}'s primary VNIC", vnic.subnet_id, subnet_id))
            if (now := ", ".join(sorted(vnic.nsg_ids)) or "no NSG") != asked:
                found.append((f"the NSGs of instance {node.instance_id}'s primary VNIC", now, asked))
    return found


@dataclass(frozen=True)
class _Network:
    """A cluster network that exists already: its nodes' VNICs, and what differs from the values."""

    live: tuple[InstanceVnics, ...] = ()
    differences: tuple[tuple[str, str, str], ...] = ()
    network_id: str = ""


def _existing(api: CountingApi, spec: NetworkSpec, planned: tuple[Vnic, ...]) -> _Network:
    """The network of ``spec`` as it is (nothing when there is none yet)."""
    found = survey(api, spec).network
    if found is None:
        return _Network()
    network = api.call("get_cluster_network", found.id)  # the summary a list gives has no placement
    pools = network.instance_pools or []
    members = api.all_pages("list_cluster_network_instances", spec.compartment_id, network.id)
    live = instance_vnics(api, [str(m.id) for m in members])
    used: tuple[Vnic, ...] = ()
    config = str(pools[0].instance_configuration_id or "") if pools else ""
    if config:
        try:
            used = configured_vnics(api, config, subnet_id=spec.subnet_id)
        except OciRequestError as exc:
            if exc.status != 404:  # gone: a grow fails at OCI, and the instances are compared below
                raise
    return _Network(live=tuple(live), network_id=str(network.id), differences=tuple(
        _differences(planned, live, network=network, used=used, subnet_id=spec.subnet_id)))


def _owned(api: CountingApi, *, compartment_id: str, release: str, namespace: str | None) -> _Network:
    """The live nodes of every cluster network of the compartment tagged with ``release`` (and ``namespace`` when
    known): the group when the network's name is not known (install, upgrade; oci/network.py, NetworkSpec.tags)."""
    live: list[InstanceVnics] = []
    for network in api.all_pages("list_cluster_networks", compartment_id):
        tags = network.freeform_tags or {}
        if tags.get(TAG_RELEASE) != release or (namespace and tags.get(TAG_NAMESPACE) != namespace):
            continue
        if state_of(api, network) in DEAD:
            continue
        members = api.all_pages("list_cluster_network_instances", compartment_id, network.id)
        live += instance_vnics(api, [str(m.id) for m in members])
    return _Network(live=tuple(live))


def _planned_found(api: CountingApi, planned: tuple[Vnic, ...], network: _Network, *, subnet_id: str,
                   cluster_id: str, ports: GroupPorts) -> list[Found]:
    """The verdict entries of nodes to be provisioned into ``subnet_id`` with the VNICs ``planned`` (see the module's
    docstring), and of ``network``'s live nodes, each of them a subject: the network that exists already (the hook),
    or the release's networks, found by their tags (install, upgrade).

    Raises:
        HelmRdmaError: OCI refused or failed a read.
    """
    group = {v.vnic_id for node in network.live for v in node.vnics} | {node.instance_id for node in network.live}
    reader = RuleReader(api)
    found: list[Found] = [(f"clusterNetwork.subnetId {subnet_id}",
                           tuple(r.text() for r in reader.judge_vnics(planned, ports=ports, group=group)))]
    for node in network.live:
        found.append((f"instance {node.instance_id}", node.problem or tuple(
            r.text() for r in reader.judge_vnics(node.vnics, ports=ports, group=group))))
    overlay = pod_network(api, cluster_id=cluster_id, nodes=None)
    return found + ([overlay] if overlay else [])


def require_closed(api: CountingApi, *, spec: NetworkSpec, cluster_id: str, ports: GroupPorts | None,
                   pods: Vnic | None = None) -> None:
    """The provisioning hook's check, before anything is created: refuse when the nodes' VNICs (planned, and those
    of the network when it exists) are open to more than the group, or the network's nodes differ from the values
    (nothing to judge when ``ports`` is None); ``pods``: the VCN-native pods' VNICs (see ``pod_vnics``).

    Raises:
        NetworkMismatchError: The network exists and its nodes have other NSGs or another subnet than the values.
        GroupPortsOpenError: A rule, or the pod network, opens them (names each).
        GroupPortsUncheckedError: The rules could not be read.
    """
    if ports is None:
        return
    try:
        planned = planned_vnics(api, subnet_id=spec.subnet_id, nsg_ids=spec.nsg_ids,
                                config_id=spec.instance_configuration_id, pods=pods)
        network = _existing(api, spec, planned)
        found = _planned_found(api, planned, network, subnet_id=spec.subnet_id, cluster_id=cluster_id, ports=ports)
    except HelmRdmaError as exc:
        raise GroupPortsUncheckedError(ports=ports.text(), why=str(exc), outcome="nothing was created",
                                       sign_in=HOOK_SIGN_IN) from None
    if network.differences:
        raise NetworkMismatchError(name=spec.name, network_id=network.network_id, differences=network.differences,
                                   deprovision=deprovision_command(spec))
    _require(PortsVerdict(ports, found=tuple(found)), outcome="nothing was created", sign_in=HOOK_SIGN_IN)


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


def judge(values: dict[str, Any], *, ports: GroupPorts, connection: Connection | None, oci: OciAuth,
          release: str = "", namespace: str | None = None,
          node_selector: Mapping[str, str] | None = None) -> PortsVerdict:
    """Judge the group's ``ports`` on the nodes of these values: the planned VNICs when the release provisions them
    (with the nodes of the networks ``release`` made, in ``namespace`` when known), else the GPU nodes of the
    preset's shape that ``connection`` lists (None: no cluster), only those the pods' ``node_selector`` selects
    when it is given (the rendered pods'); and the pod network.

    Raises:
        ClusterError: The API server stopped answering.
    """
    network = values.get("clusterNetwork") or {}
    cluster_id = str((network.get("oke") or {}).get("clusterId") or "")
    if network.get("provision"):
        subnet = str(network.get("subnetId") or "")
        if not subnet:
            return PortsVerdict(ports, note="clusterNetwork.subnetId is empty, so there is no subnet to read")
        api = _sign_in(oci)
        if isinstance(api, str):
            return PortsVerdict(ports, note=api)
        try:
            planned = planned_vnics(api, subnet_id=subnet, nsg_ids=tuple(network.get("nsgIds") or ()),
                                    config_id=str(network.get("instanceConfigurationId") or ""),
                                    pods=pod_vnics(network.get("oke") or {}))
            compartment = str(network.get("compartmentId") or "")
            owned = (_owned(api, compartment_id=compartment, release=release, namespace=namespace)
                     if release and compartment else _Network())
            found = _planned_found(api, planned, owned, subnet_id=subnet, cluster_id=cluster_id, ports=ports)
        except HelmRdmaError as exc:
            return PortsVerdict(ports, found=((f"clusterNetwork.subnetId {subnet}", str(exc)),))
        return PortsVerdict(ports, found=tuple(found))
    if connection is None:
        return PortsVerdict(ports, note="no kubeconfig, so the GPU nodes could not be listed")
    shape = str(values["preset"]["shape"])
    nodes = gpu_nodes(connection, shape=shape)
    if nodes is None:
        return PortsVerdict(ports, note="the kube user may not list nodes, so the GPU nodes could not be read")
    if nodes and node_selector:
        nodes = [n for n in nodes if all(((n.get("metadata") or {}).get("labels") or {}).get(k) == v
                                         for k, v in node_selector.items())]
        if not nodes:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(node_selector.items()))
            return PortsVerdict(ports, beyond=f"no node that the pods' nodeSelector ({shown}) selects is in the "
                                              "cluster yet, so there are no rules to read")
    if not nodes:
        return PortsVerdict(ports, beyond=f"no node of shape {shape} is in the cluster yet, so there are no rules to "
                                          "read (with clusterNetwork.provision the planned subnet is read instead)")
    instances = {str(n["metadata"]["name"]): ocid for n in nodes
                 if (ocid := instance_id(str((n.get("spec") or {}).get("providerID") or "")))}
    foreign = sorted(str(n["metadata"]["name"]) for n in nodes if str(n["metadata"]["name"]) not in instances)
    beyond = (f"{len(foreign)} GPU node(s) ({', '.join(foreign[:SHOWN])}{' ...' if len(foreign) > SHOWN else ''}) "
              "name no OCI instance in spec.providerID, so their rules could not be read") if foreign else ""
    session = _sign_in(oci, count=len(instances)) if instances or cluster_id else None
    if isinstance(session, str):
        return PortsVerdict(ports, note=session, beyond=beyond)
    per_node = _node_found(session, instances, ports=ports) if session is not None and instances else {}
    try:
        overlay = pod_network(session, cluster_id=cluster_id, nodes=nodes)
    except HelmRdmaError as exc:
        overlay = (POD_NETWORK, str(exc))
    return PortsVerdict(ports, found=tuple(sorted(per_node.items())) + ((overlay,) if overlay else ()),
                        beyond=beyond)


def _node_found(api: CountingApi, instances: dict[str, str], *, ports: GroupPorts) -> dict[str, tuple[str, ...] | str]:
    """Node -> the rules that open ``ports`` on its VNICs, or why they were not read; an NSG a rule admits from must
    hold only VNICs of these nodes' instances."""
    reader = RuleReader(api)
    read = {i.instance_id: i for i in instance_vnics(api, instances.values())}
    group = {v.vnic_id for i in read.values() for v in i.vnics} | set(instances.values())
    found: dict[str, tuple[str, ...] | str] = {}
    for node, ocid in instances.items():
        try:
            found[node] = read[ocid].problem or tuple(r.text() for r in reader.judge_vnics(
                read[ocid].vnics, ports=ports, group=group))
        except HelmRdmaError as exc:
            found[node] = str(exc)
    return found


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


def group_port_checks(values: dict[str, Any], *, connection: Connection, oci: OciAuth, release: str = "",
                      node_selector: Mapping[str, str] | None = None) -> list[ClusterCheck]:
    """doctor --cluster's lines about the group's ports: an error per node (or planned subnet) whose rules open them
    (a warning when distributed.allowOpenGroupPorts accepts it), ok when none does, not checked and why otherwise;
    nothing when the group's ports are not on the node network.

    Raises:
        ClusterError: The API server stopped answering.
    """
    ports = group_ports_of(values)
    if ports is None:
        return []
    if port_guard(values):
        return [ClusterCheck(CHECK, "ok", str(values["preset"]["shape"]), GUARDED.format(ports=ports.text()), "")]
    verdict = judge(values, ports=ports, connection=connection, oci=oci, release=release,
                    namespace=connection.namespace, node_selector=node_selector)
    shape = str(values["preset"]["shape"])
    checks = port_checks(shape, dict(verdict.found), ports=ports.text(),
                         accepted=bool(values["distributed"]["allowOpenGroupPorts"]))
    if verdict.note:
        checks.append(ClusterCheck(CHECK, "warning", shape, f"not checked: {verdict.note}", LOCAL_SIGN_IN))
    return checks


def require_judged_closed(verdict: PortsVerdict) -> None:
    """install's and upgrade's refusal, before helm runs.

    Raises:
        GroupPortsOpenError: A rule, or the pod network, opens the group's ports (names each, with the node or
            subnet).
        GroupPortsUncheckedError: Some node, the planned subnet or the pod network could not be judged.
    """
    _require(verdict, outcome="nothing was installed", sign_in=LOCAL_SIGN_IN)


def _require(verdict: PortsVerdict, *, outcome: str, sign_in: str) -> None:
    if verdict.opened:
        raise GroupPortsOpenError(ports=verdict.ports.text(), lines=verdict.opened, outcome=outcome,
                                  fix=GROUP_PORTS_FIX)
    if verdict.unjudged:
        raise GroupPortsUncheckedError(ports=verdict.ports.text(), why="; ".join(verdict.unjudged), outcome=outcome,
                                       sign_in=sign_in)
