"""The provisioning hook judges the VNICs the nodes really get, before it creates anything: the instance configuration
a user names (clusterNetwork.instanceConfigurationId), and the live nodes of a network that exists already (a grow, or
a run that changes nothing), whose NSGs and subnet must be what the values say; and the pod network, which OCI's rules
do not see on a flannel cluster. The fake OCI serves every call over its socket; the oci SDK makes them.

Rules of the consumers:
- A cluster network launches its pool's nodes from the pool's instance configuration, and places their primary VNIC in
  the placement's subnet (docs.oracle.com API reference, Core Services, ClusterNetworkPlacementConfigurationDetails
  primaryVnicSubnets; InstanceConfiguration instanceDetails.launchDetails.createVnicDetails.nsgIds, and
  secondaryVnics[].createVnicDetails): a network made before keeps its own configuration, so a grow launches new
  nodes with the NSGs that configuration names, whatever the values say now (oci/network.py, _instance_configuration).
- A rule whose source is an NSG admits every VNIC in it (docs.oracle.com/iaas/Content/Network/Concepts/
  networksecuritygroups.htm); its members: VirtualNetworkClient.list_network_security_group_vnics.
- An OKE cluster's pod networking is cluster_pod_network_options[].cni_type, FLANNEL_OVERLAY or OCI_VCN_IP_NATIVE
  (ContainerEngineClient.get_cluster; the SDK's container_engine/models/cluster_pod_network_option_details.py).
  flannel's VXLAN backend carries pod traffic between nodes inside UDP (flannel-io/flannel Documentation/
  backends.md: port "defaults to kernel default, currently 8472"), which OKE's worker rules admit between workers
  (docs.oracle.com/iaas/Content/ContEng/Concepts/contengnetworkconfig.htm, worker node rules: all traffic from the
  worker CIDR), so no OCI rule closes a GPU node's listeners to pods there.
"""
# ruff: noqa: F811  (the fixtures imported from ocitest are redefined as test parameters)

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helm_rdma.commands.groupports import PortsVerdict, judge, judged_ports
from helm_rdma.commands.provision import Watch, provision
from helm_rdma.errors import GroupPortsOpenError, GroupPortsUncheckedError, NetworkMismatchError
from helm_rdma.helmenv import HelmEnv

from .fake_oci import FakeOci
from .ocitest import COMPARTMENT, config, fake, key  # noqa: F401  (fixtures)
from .test_provision import closed_subnet, creates, hook_plan, native, values_file

OPEN = {"description": "anyone", "direction": "INGRESS", "protocol": "all", "source": "0.0.0.0/0",
        "sourceType": "CIDR_BLOCK", "isStateless": False}
WATCH = Watch(poll_seconds=0.01)


def hook_values(tmp_path: Path, fake: FakeOci, *, subnet: str, nsgs: list[str], nodes: int = 2,
                accept_open: bool = False, oke: dict[str, Any] | None = None, **cluster_network: Any) -> Path:
    """The chart's values as the hook mounts them: this subnet and NSGs, ``nodes`` nodes, the ports' opt-out."""
    path = values_file(tmp_path, fake, compartmentId=COMPARTMENT, availabilityDomain="AD-1", subnetId=subnet,
                       imageId="ocid1.image.oc1..i", nsgIds=nsgs, name="llama405b.ml",
                       oke=native(fake) if oke is None else oke, **cluster_network)
    values = json.loads(path.read_text())
    values["nodes"] = nodes
    values["distributed"]["allowOpenGroupPorts"] = accept_open
    values["distributed"]["portGuard"]["enabled"] = False  # OCI's rules are the judge only without the port guard
    path.write_text(json.dumps(values))
    return path


def network_nsgs(fake: FakeOci) -> list[list[str]]:
    """The NSGs of the primary VNIC of each instance of the one live network."""
    ids = {i["id"] for i in fake.instances(fake.network()["id"])}
    primary = {a["vnicId"] for a in fake.vnic_attachments if a["instanceId"] in ids}
    return [v["nsgIds"] for v in fake.vnics.values() if v["id"] in primary and v["isPrimary"]]


def test_a_network_made_open_is_not_grown_under_values_that_say_closed(config: Path, fake: FakeOci,
                                                                       tmp_path: Path) -> None:
    """Day 1 an NSG that admits everyone, accepted; day 2 the values name a closed NSG and drop the opt-out, and ask
    for a third node: the network's configuration would launch it with the open NSG, so the hook refuses, naming what
    the nodes have and what the values ask, and resizes nothing."""
    subnet, closed = closed_subnet(fake)
    opened = fake.add_nsg(OPEN)
    day1 = hook_values(tmp_path / "1", fake, subnet=subnet, nsgs=[opened], accept_open=True)
    assert provision(hook_plan(day1, config, fake), env=HelmEnv(), watch=WATCH).network.state == "RUNNING"
    assert network_nsgs(fake) == [[opened], [opened]]
    net = fake.network()["id"]
    before = creates(fake)
    day2 = hook_values(tmp_path / "2", fake, subnet=subnet, nsgs=[closed], nodes=3)
    with pytest.raises(NetworkMismatchError) as refused:
        provision(hook_plan(day2, config, fake), env=HelmEnv(), watch=WATCH)
    said = str(refused.value)
    assert refused.value.exit_code == 2
    assert (f"cluster network llama405b.ml ({net}) exists with other nodes than asked: the NSGs of the primary VNIC "
            f"its instance configuration gives new nodes is {opened}, asked {closed}; the NSGs of instance ") in said
    assert said.count(f"'s primary VNIC is {opened}, asked {closed}") == 2
    assert creates(fake) == before and fake.pool_size(net) == 2
    # Values that say what the nodes have are judged on them: the open NSG refuses without the opt-out.
    again = hook_values(tmp_path / "3", fake, subnet=subnet, nsgs=[opened], nodes=3)
    with pytest.raises(GroupPortsOpenError) as open_:
        provision(hook_plan(again, config, fake), env=HelmEnv(), watch=WATCH)
    [instance, *_] = [i["id"] for i in fake.instances(net)]
    assert f"  instance {instance}: NSG {opened} ingress rule #0 (the first, 000000, \"anyone\") admits TCP from " \
           "0.0.0.0/0 to every port" in str(open_.value)
    assert creates(fake) == before and fake.pool_size(net) == 2


def test_a_closed_network_grows_and_its_nodes_nsg_admits_only_them(config: Path, fake: FakeOci,
                                                                   tmp_path: Path) -> None:
    """Day 1 two nodes in an NSG that admits TCP from itself; day 2 three: the NSG's members are the network's own
    instances, so its rule from itself is closed and the grow goes on; a VNIC of another instance in that NSG opens
    it."""
    subnet, closed = closed_subnet(fake)
    provision(hook_plan(hook_values(tmp_path / "1", fake, subnet=subnet, nsgs=[closed]), config, fake),
              env=HelmEnv(), watch=WATCH)
    net = fake.network()["id"]
    grown = provision(hook_plan(hook_values(tmp_path / "2", fake, subnet=subnet, nsgs=[closed], nodes=3), config,
                                fake), env=HelmEnv(), watch=WATCH)
    assert grown.network.state == "RUNNING" and fake.pool_size(net) == 3
    assert network_nsgs(fake) == [[closed]] * 3
    stranger = fake.add_instance("ocid1.compartment.oc1..other", [closed], subnet=subnet)
    with pytest.raises(GroupPortsOpenError) as refused:
        provision(hook_plan(hook_values(tmp_path / "3", fake, subnet=subnet, nsgs=[closed], nodes=4), config, fake),
                  env=HelmEnv(), watch=WATCH)
    assert f"admits TCP from NSG {closed}, which admits its members, 1 of them not the GPU nodes judged (VNIC " in \
        str(refused.value) and f"of instance {stranger})" in str(refused.value)
    assert fake.pool_size(net) == 3


def test_a_users_instance_configuration_is_judged_by_its_own_vnics(config: Path, fake: FakeOci,
                                                                   tmp_path: Path) -> None:
    """clusterNetwork.instanceConfigurationId: the nodes get that configuration's NSGs (nsgIds are not used) and
    its secondary VNICs; an open NSG on either refuses before anything is created."""
    subnet, closed = closed_subnet(fake)
    opened = fake.add_nsg(OPEN)
    mine = fake.new_id("instanceconfiguration")
    fake.instance_configurations[mine] = {
        "id": mine, "compartmentId": COMPARTMENT, "displayName": "mine", "timeCreated": "2026-01-01T00:00:00Z",
        "instanceDetails": {"instanceType": "compute", "launchDetails": {"createVnicDetails": {"nsgIds": [closed]}},
                            "secondaryVnics": [{"createVnicDetails": {"subnetId": subnet, "nsgIds": [opened]}}]}}
    path = hook_values(tmp_path, fake, subnet=subnet, nsgs=[closed], instanceConfigurationId=mine)
    with pytest.raises(GroupPortsOpenError) as refused:
        provision(hook_plan(path, config, fake), env=HelmEnv(), watch=WATCH)
    assert f"NSG {opened} ingress rule #0 (the first, 000000, \"anyone\") admits TCP from 0.0.0.0/0" in \
        str(refused.value)
    assert creates(fake) == [] and not fake.cluster_networks
    fake.instance_configurations[mine]["instanceDetails"]["secondaryVnics"] = []
    assert provision(hook_plan(path, config, fake), env=HelmEnv(), watch=WATCH).network.state == "RUNNING"


def test_on_a_flannel_cluster_the_hook_refuses_whatever_ocis_rules_say(config: Path, fake: FakeOci,
                                                                        tmp_path: Path) -> None:
    subnet, closed = closed_subnet(fake)
    flannel = fake.add_cluster(cni="FLANNEL_OVERLAY")
    path = hook_values(tmp_path / "f", fake, subnet=subnet, nsgs=[closed], oke={"clusterId": flannel})
    with pytest.raises(GroupPortsOpenError) as refused:
        provision(hook_plan(path, config, fake), env=HelmEnv(), watch=WATCH)
    said = str(refused.value)
    assert f"  pod network: the cluster's pods use flannel's VXLAN overlay (cluster {flannel}'s CNI is " \
           "FLANNEL_OVERLAY): any pod on any node reaches the GPU nodes' listeners through it, inside UDP 8472 " \
           "between the worker nodes, which OKE's worker rules must admit, so no OCI rule can close the group's " \
           "ports to pods; the ways on are VCN-native pod networking (OCI_VCN_IP_NATIVE) with OCI's rules closed, " \
           "or distributed.allowOpenGroupPorts=true" in said
    assert creates(fake) == []
    # No cluster named: the pod network is unknown, so nothing is created on a guess.
    unknown = hook_values(tmp_path / "u", fake, subnet=subnet, nsgs=[closed], oke={})
    with pytest.raises(GroupPortsUncheckedError) as unjudged:
        provision(hook_plan(unknown, config, fake), env=HelmEnv(), watch=WATCH)
    assert "pod network: clusterNetwork.oke.clusterId is empty, so the cluster's pod networking (flannel's " \
           "overlay, or VCN-native) is unknown; nothing was created" in str(unjudged.value)
    assert creates(fake) == []
    accepted = hook_values(tmp_path / "a", fake, subnet=subnet, nsgs=[closed], accept_open=True,
                           oke={"clusterId": flannel})
    assert provision(hook_plan(accepted, config, fake), env=HelmEnv(), watch=WATCH).network.state == "RUNNING"


def test_the_pods_vnics_are_judged_as_the_existing_nodes_are(config: Path, fake: FakeOci, tmp_path: Path) -> None:
    """VCN-native pods' VNICs are attached to the node's instance, so doctor --cluster judges them with the node's
    own; the hook judges clusterNetwork.oke.podSubnetId and podNsgIds too, so both say the same of the same nodes."""
    subnet, closed = closed_subnet(fake)
    oke = native(fake)
    pods = fake.add_subnet("10.0.128.0/18", [OPEN])
    path = hook_values(tmp_path, fake, subnet=subnet, nsgs=[closed], oke={**oke, "podSubnetId": pods})
    with pytest.raises(GroupPortsOpenError) as refused:
        provision(hook_plan(path, config, fake), env=HelmEnv(), watch=WATCH)
    [listed] = fake.subnets[pods]["securityListIds"]
    assert f"security list {listed} ingress rule #0 (the first, \"anyone\") admits TCP from 0.0.0.0/0" in \
        str(refused.value)
    assert creates(fake) == []
    closed_pods = hook_values(tmp_path / "c", fake, subnet=subnet, nsgs=[closed], oke=oke)
    assert provision(hook_plan(closed_pods, config, fake), env=HelmEnv(), watch=WATCH).network.state == "RUNNING"


def test_a_network_is_not_grown_into_values_that_name_another_subnet(config: Path, fake: FakeOci,
                                                                     tmp_path: Path) -> None:
    subnet, closed = closed_subnet(fake)
    provision(hook_plan(hook_values(tmp_path / "1", fake, subnet=subnet, nsgs=[closed]), config, fake),
              env=HelmEnv(), watch=WATCH)
    net = fake.network()["id"]
    other, _ = closed_subnet(fake)
    with pytest.raises(NetworkMismatchError) as refused:
        provision(hook_plan(hook_values(tmp_path / "2", fake, subnet=other, nsgs=[closed], nodes=3), config, fake),
                  env=HelmEnv(), watch=WATCH)
    said = str(refused.value)
    assert f"the subnet its nodes are placed in is {subnet}, asked {other}" in said
    assert said.count(f"'s primary VNIC is {subnet}, asked {other}") == 2 and fake.pool_size(net) == 2


def test_install_counts_the_releases_own_provisioned_nodes_as_the_group(config: Path, fake: FakeOci,
                                                                        tmp_path: Path) -> None:
    """Once the hook made the network, the NSG that admits TCP from itself holds exactly its nodes. install and
    upgrade, which cannot know the name the chart gives the network, find the release's networks by their release
    and namespace tags: their nodes are the group, so the second day's upgrade goes on; another release's are not."""
    subnet, closed = closed_subnet(fake)
    day1 = hook_values(tmp_path / "1", fake, subnet=subnet, nsgs=[closed])
    plan = hook_plan(day1, config, fake)
    provision(plan, env=HelmEnv(), watch=WATCH)
    values = json.loads(day1.read_text())
    values["clusterNetwork"]["provision"] = True
    ports = judged_ports(values)
    assert ports is not None

    def verdict(release: str, namespace: str | None) -> PortsVerdict:
        return judge(values, ports=ports, connection=None, oci=plan.auth, release=release, namespace=namespace)

    for namespace in ("ml", None):  # the namespace helm targets, or unknown here (the kube context's)
        own = verdict("llama405b", namespace)
        assert not own.opened and not own.unjudged, own
    for other in (verdict("other", "ml"), verdict("llama405b", "team-b")):
        assert any(f"admits TCP from NSG {closed}, which admits its members, 2 of them not the GPU nodes judged" in line
                   for line in other.opened), other.opened
